"""Video files to emotion timelines: the upload page, ``/api/v1/videos`` and the background job service."""

from __future__ import annotations

from flask import Flask

from .service import init_video


def init_video_feature(app: Flask) -> None:
    """Register the video settings, job registry, page and API routes on an app."""
    from .views import api_bp, bp

    init_video(app)
    app.register_blueprint(bp)
    app.register_blueprint(api_bp)
