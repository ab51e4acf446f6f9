"""Files named by the sha256 of their content under one media folder; rows hold only relative paths."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


class MediaStore:
    """Content-addressed file store: the same bytes are stored once, whoever sends them."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes, kind: str, suffix: str) -> str:
        """Store bytes as ``<kind>/<sha256><suffix>`` and return that relative path."""
        relative = f"{kind}/{hashlib.sha256(data).hexdigest()}{suffix}"
        target = self.root / relative
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a reader never sees half a file.
            handle, temporary = tempfile.mkstemp(dir=target.parent)
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temporary, target)
        return relative

    def path(self, relative: str) -> Path:
        """Absolute path of a stored file, refusing paths that leave the media folder."""
        resolved = (self.root / relative).resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            raise ValueError(f"{relative!r} is outside the media folder")
        return resolved

    def delete(self, relative: str) -> None:
        """Remove a stored file if it is there."""
        self.path(relative).unlink(missing_ok=True)


def png_bytes(pixels: np.ndarray) -> bytes:
    """Lossless PNG of a small uint8 image (a 48x48 face crop encodes in well under a millisecond)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
