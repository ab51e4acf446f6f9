"""The photo feature: upload, URL and snapshot pages that work without JavaScript, and the photo service."""
