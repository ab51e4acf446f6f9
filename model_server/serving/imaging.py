"""Image bytes in, upright RGB arrays out (and back): safe decoding with clear errors, no torch."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
DEFAULT_MAX_PIXELS = 40_000_000  # a 48-megapixel phone photo is rare; 40 MP decodes in ~0.5 GB


class ImageError(ValueError):
    """Base class for image input a user can get wrong; ``status`` is the HTTP status it maps to."""

    status = 422
    code = "invalid_image"


class UnsupportedImageError(ImageError):
    """Not an image, or a format we do not accept."""

    status = 415
    code = "unsupported_image"


class CorruptImageError(ImageError):
    """An accepted format whose data is truncated or broken, or an empty image."""

    status = 422
    code = "corrupt_image"


class ImageTooLargeError(ImageError):
    """More pixels than the configured cap (decompression bombs are refused before decoding)."""

    status = 413
    code = "image_too_large"


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB uint8 image [H,W,3] and the format it arrived in."""

    rgb: np.ndarray
    format: str

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.rgb.shape[0])


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode JPEG/PNG/WebP bytes to upright RGB, refusing other formats, broken data and huge images."""
    if not data:
        raise CorruptImageError("the file is empty")
    try:
        # Opening reads only the header, so the pixel cap is checked before any pixel is decoded.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UnsupportedImageError("the file is not an image we can read (send JPEG, PNG or WebP)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(f"the image has too many pixels (limit {max_pixels:,})") from None
    except (OSError, ValueError) as error:
        raise CorruptImageError(f"the image could not be read: {error}") from None
    if image.format not in ACCEPTED_FORMATS:
        raise UnsupportedImageError(f"{image.format} images are not accepted; send JPEG, PNG or WebP")
    width, height = image.size
    if width == 0 or height == 0:
        raise CorruptImageError("the image has no pixels")
    if width * height > max_pixels:
        raise ImageTooLargeError(f"the image is {width}x{height}; the limit is {max_pixels:,} pixels")
    try:
        image.load()
        # Phones store photos sideways and record the rotation in EXIF; show them upright.
        image = ImageOps.exif_transpose(image)
        rgb = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as error:
        raise CorruptImageError(f"the image data is truncated or corrupt ({error})") from None
    return DecodedImage(rgb=np.ascontiguousarray(rgb), format=image.format or "")


def encode_image(rgb: np.ndarray, format: str = "PNG", quality: int = 90) -> bytes:
    """Encode an RGB or grayscale uint8 array as PNG or JPEG bytes."""
    buffer = io.BytesIO()
    options = {"quality": quality} if format.upper() == "JPEG" else {}
    Image.fromarray(rgb).save(buffer, format=format, **options)
    return buffer.getvalue()


def crop_box(rgb: np.ndarray, x: int, y: int, w: int, h: int, margin: float = 0.0) -> np.ndarray:
    """Cut a box (grown by ``margin`` of its size on each side) out of an image, clipped to its edges."""
    grow_x, grow_y = int(round(w * margin)), int(round(h * margin))
    top, left = max(0, y - grow_y), max(0, x - grow_x)
    bottom, right = min(rgb.shape[0], y + h + grow_y), min(rgb.shape[1], x + w + grow_x)
    return rgb[top:bottom, left:right]
