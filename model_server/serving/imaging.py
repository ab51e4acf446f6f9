"""Image bytes in, upright RGB arrays out (and back): safe decoding with clear errors (model_server.errors), no torch."""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import re
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import CorruptImageError, ImageTooLargeError, ImageTooSlowError, ModelBusyError, UnsupportedImageError
from .concurrency import threading

# MPO is what cameras and phones write for JPEGs with a multi-picture index (depth maps, previews):
# its first picture is an ordinary JPEG, so it is decoded as one.
ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
# Phones save 12 MP by default and 24 MP on recent iPhones (5712x4284 = 24.5 MP); 48-200 MP files come only
# from opt-in "high resolution" modes. 25 MP keeps every default photo and cuts the old 40 MP worst case by 40%.
DEFAULT_MAX_PIXELS = 25_000_000
# libjpeg's progressive scripts use 10 scans (6 for grayscale) and optimisers a few more; each scan costs a
# pass over every coefficient, so thousands of near-empty scans made a 330 KB file cost 41 s (issue 9).
MAX_JPEG_SCANS = 100
# CPU seconds one decode may take: a 25 MP JPEG or PNG takes 0.3-0.8 s here. CPU time, not wall time,
# so a busy machine slows honest images without failing them.
DEFAULT_TIME_BUDGET_S = 4.0
# Bytes of decode buffers in flight per process; a decode whose estimate does not fit waits (one may always
# run alone). 16 concurrent 25 MP one-colour PNGs (80 KB each) peaked at 4.1 GB unbounded, 0.6 GB with it.
DECODE_MEMORY_BUDGET = 640 * 1024 * 1024
DECODE_WAIT_S = 30.0  # longer than any honest queue of large decodes; then the caller gets "busy"
# Bytes Pillow keeps per pixel for each mode while decoding (RGB is stored as 4 bytes per pixel).
_PILLOW_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}
_READ_CHUNK = 4096  # bytes the decoder gets per read, so the time budget is checked often (Pillow reads 64 KB)
# The end of a JPEG scan's entropy-coded data: a 0xFF that is neither byte stuffing (FF 00) nor a restart marker.
_ENTROPY_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB uint8 image [H,W,3], the format it arrived in, and its full size if decoded reduced."""

    rgb: np.ndarray
    format: str
    full_size: tuple[int, int] | None = None  # (width, height) upright at full resolution; None: rgb is full size

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.rgb.shape[0])


_TRIM_AFTER_BYTES = 64 * 1024 * 1024  # decodes this big leave freed heap worth handing back at once
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None)


def _release_free_memory() -> None:
    """Hand freed heap back to the OS (glibc keeps it per thread arena, so memory ratcheted up after bursts)."""
    trim = getattr(_LIBC, "malloc_trim", None)  # glibc only; elsewhere the allocator decides
    if trim is not None:
        trim(0)


class _DecodeMemory:
    """Bytes of decode buffers in flight in this process; a decode waits until its estimate fits."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.in_use = 0
        # Real OS-thread primitives: decodes run in tpool threads, where green locks misbehave.
        self._changed = threading.Condition()

    @contextmanager
    def reserve(self, nbytes: int, wait_s: float) -> Iterator[None]:
        """Hold ``nbytes`` of the budget for the block (alone if it is bigger than the whole budget)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.in_use == 0 or self.in_use + nbytes <= self.budget, wait_s):
                raise ModelBusyError("too many large images are being decoded; try again")
            self.in_use += nbytes
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= nbytes
                self._changed.notify_all()
            if nbytes >= _TRIM_AFTER_BYTES:
                _release_free_memory()


_decode_memory = _DecodeMemory(DECODE_MEMORY_BUDGET)


class _BudgetedReader(io.BytesIO):
    """The image bytes, read by the decoder until the decode has used its CPU budget."""

    def __init__(self, data: bytes, budget_s: float) -> None:
        super().__init__(data)
        # thread_time: CPU of this thread only, so waiting for a core under load is not counted.
        self._deadline = time.thread_time() + budget_s

    def read(self, size: int | None = -1, /) -> bytes:
        """Read as BytesIO does, or refuse once the budget is spent."""
        if time.thread_time() > self._deadline:
            raise ImageTooSlowError("the image is far more expensive to decode than a photo; it was refused")
        return super().read(size)


def count_jpeg_scans(data: bytes, limit: int = MAX_JPEG_SCANS) -> int:
    """Count the scans (SOS segments) of a JPEG's first picture by walking its markers, stopping past ``limit``."""
    pos, scans = 2, 0
    while pos + 4 <= len(data) and scans <= limit:
        if data[pos] != 0xFF:
            break  # not a marker where one must be: corrupt, and the decoder will say so
        marker = data[pos + 1]
        if marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 1 if marker == 0xFF else 2  # fill byte, or a marker without a length
            continue
        if marker == 0xD9:
            break  # end of the first picture; an MPO's other pictures follow and are never decoded
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xDA:
            scans += 1
            end = _ENTROPY_END.search(data, pos)
            if end is None:
                break
            pos = end.start()
    return scans


def _open(data: bytes, max_pixels: int, time_budget_s: float) -> Image.Image:
    """Open (header only) and check format, size and JPEG scan count before any pixel is decoded."""
    if not data:
        raise CorruptImageError("the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(_BudgetedReader(data, time_budget_s))
    except ImageTooSlowError:
        raise  # a ValueError too, but it is not "corrupt"
    except UnidentifiedImageError:
        raise UnsupportedImageError("the file is not an image we can read (send JPEG, PNG or WebP)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(f"the image has too many pixels (limit {max_pixels:,})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise CorruptImageError(f"the image could not be read: {error}") from None
    if image.format not in ACCEPTED_FORMATS:
        raise UnsupportedImageError(f"{image.format} images are not accepted; send JPEG, PNG or WebP")
    width, height = image.size
    if width == 0 or height == 0:
        raise CorruptImageError("the image has no pixels")
    if width * height > max_pixels:
        raise ImageTooLargeError(f"the image is {width}x{height}; the limit is {max_pixels:,} pixels")
    if image.format in ("JPEG", "MPO") and count_jpeg_scans(data) > MAX_JPEG_SCANS:
        raise ImageTooSlowError(f"the JPEG has more than {MAX_JPEG_SCANS} scans; no camera writes that many")
    return image


def _reduce(image: Image.Image, max_side: int | None) -> Image.Image:
    """Ask the decoder for a smaller image when the caller needs only ``max_side`` px (JPEG scales by 1/2-1/8)."""
    if max_side and max(image.size) > max_side and image.format in ("JPEG", "MPO"):
        scale = max_side / max(image.size)
        # draft picks the smallest DCT scale that is still at least this size, so detail is never lost.
        image.draft(image.mode, (max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    return image


def _estimated_bytes(image: Image.Image) -> int:
    """Upper bound of the buffers one decode holds: Pillow's image and the RGB array (bands are small)."""
    return image.width * image.height * (_PILLOW_BYTES_PER_PIXEL.get(image.mode, 4) + 3)


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Copy a decoded image into a new RGB array a band of rows at a time.

    np.asarray(image) goes through tobytes(), which holds the pixels twice more (chunks, then their join),
    and convert("RGB") a third time: a 25 MP PNG peaked at 250 MB. Bands of about a megapixel keep the extra
    to a few MB.
    """
    width, height = image.size
    rgb = np.empty((height, width, 3), np.uint8)
    rows = max(1, (1 << 20) // width)
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(height, top + rows)))
        rgb[top:top + rows] = np.asarray(band if band.mode == "RGB" else band.convert("RGB"))
    return rgb


# Orientation tag (EXIF 0x0112) -> the array operation that shows the photo upright, as ImageOps.exif_transpose.
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 1)[:, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation tag, 1 (upright) when absent or unreadable."""
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - broken EXIF in a good image: show it as stored rather than refuse it
        return 1
    return value if value in _UPRIGHT else 1


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, *, max_side: int | None = None,
                 time_budget_s: float = DEFAULT_TIME_BUDGET_S) -> DecodedImage:
    """Decode JPEG/PNG/WebP bytes to upright RGB, refusing other formats, broken data, bombs and slow files.

    ``max_side``: the caller needs no more than about this many pixels on the long side; the result is then
    reduced (JPEG while decoding, others right after) to between ``max_side`` and twice that.
    """
    image = _open(data, max_pixels, time_budget_s)
    arrived_as, full_size = image.format, image.size
    image = _reduce(image, max_side)
    image.decodermaxblock = _READ_CHUNK
    try:
        with _decode_memory.reserve(_estimated_bytes(image), DECODE_WAIT_S), image:
            image.load()
            if max_side and max(image.size) > max_side:
                image = image.reduce(max(image.size) // max_side)  # box filter; the full-size buffer goes below
            orientation = _orientation(image)
            rgb = _to_rgb(image)  # a copy: Pillow's buffers go when the block closes
    except ImageTooSlowError:
        raise  # a ValueError too, but it is not "corrupt"
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise CorruptImageError(f"the image data is truncated or corrupt ({error})") from None
    if orientation != 1:
        # Phones store photos sideways and record the rotation in EXIF; show them upright.
        rgb = np.ascontiguousarray(_UPRIGHT[orientation](rgb))
        full_size = full_size[::-1] if orientation >= 5 else full_size
    reduced = (rgb.shape[1], rgb.shape[0]) != full_size
    return DecodedImage(rgb=rgb, format="JPEG" if arrived_as == "MPO" else arrived_as or "",
                        full_size=full_size if reduced else None)


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
