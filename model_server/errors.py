"""The model tier's errors: what went wrong, as a stable code and a readable message; no HTTP here.

The web tier maps each ``code`` to a status once (``webapp/errors.py``), for HTTP and Socket.IO alike.
A remote worker sends ``code`` and message over the wire and the client raises the same class again.
"""

from __future__ import annotations


class AnalysisError(Exception):
    """Base of every error the model tier reports to its caller."""

    code = "analysis_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ImageError(AnalysisError, ValueError):
    """Image input the sender can get wrong."""

    code = "invalid_image"


class UnsupportedImageError(ImageError):
    """Not an image, or a format we do not accept."""

    code = "unsupported_image"


class CorruptImageError(ImageError):
    """An accepted format whose data is truncated or broken, or an empty image."""

    code = "corrupt_image"


class ImageTooLargeError(ImageError):
    """More pixels than the configured cap (decompression bombs are refused before decoding)."""

    code = "image_too_large"


class ImageTooSlowError(ImageError):
    """An image whose decoding would cost far more than any real photo (e.g. thousands of JPEG scans)."""

    code = "image_too_complex"


class ModelUnavailableError(AnalysisError):
    """No model can answer: not loaded, no live worker, or shutting down."""

    code = "model_unavailable"


class ModelBusyError(AnalysisError):
    """The model is alive but its queue is full or it missed the request's deadline."""

    code = "busy"


_BY_CODE = {cls.code: cls for cls in (AnalysisError, ImageError, UnsupportedImageError, CorruptImageError,
                                      ImageTooLargeError, ImageTooSlowError, ModelUnavailableError, ModelBusyError)}


def error_from_code(code: str, message: str) -> AnalysisError:
    """Rebuild an error sent over the wire by its code (unknown codes become the base class)."""
    return _BY_CODE.get(code, AnalysisError)(message)
