"""Decoding user images: accepted formats, EXIF orientation, and a clear error for each bad input."""

import io
import zlib
import struct

import numpy as np
import pytest
from PIL import Image

from model_server.serving.imaging import (CorruptImageError, ImageTooLargeError, UnsupportedImageError, crop_box,
                                  decode_image, encode_image)
from model_helpers import write_image


@pytest.mark.parametrize("suffix,mode", [(".png", "L"), (".png", "RGBA"), (".jpg", "RGB"), (".webp", "RGB")])
def test_accepted_formats_decode_to_rgb(tmp_path, suffix, mode):
    path = write_image(tmp_path / f"x{suffix}", size=(64, 48), mode=mode)
    image = decode_image(path.read_bytes())
    assert image.rgb.shape == (48, 64, 3) and image.rgb.dtype == np.uint8
    assert (image.width, image.height) == (64, 48)


def test_exif_rotated_phone_photo_comes_out_upright():
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :40] = 255  # left half white as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", exif=exif.tobytes())
    image = decode_image(buffer.getvalue())
    assert image.rgb.shape[:2] == (80, 40)  # portrait after rotation
    assert image.rgb[:40].mean() > 200 and image.rgb[40:].mean() < 50  # white half now on top


@pytest.mark.parametrize("suffix", [".gif", ".bmp", ".tiff"])
def test_other_image_formats_are_unsupported(tmp_path, suffix):
    path = write_image(tmp_path / f"x{suffix}", mode="RGB")
    with pytest.raises(UnsupportedImageError, match="JPEG, PNG or WebP") as caught:
        decode_image(path.read_bytes())
    assert caught.value.status == 415


def test_non_image_bytes_are_unsupported():
    with pytest.raises(UnsupportedImageError, match="not an image"):
        decode_image(b"%PDF-1.4 definitely a document")


def test_empty_file_is_corrupt():
    with pytest.raises(CorruptImageError, match="empty"):
        decode_image(b"")


def test_truncated_jpeg_is_corrupt(tmp_path):
    data = write_image(tmp_path / "x.jpg", size=(256, 256), mode="RGB").read_bytes()
    with pytest.raises(CorruptImageError) as caught:
        decode_image(data[: len(data) // 2])
    assert caught.value.status == 422


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size; a bomb must be refused from the header alone."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(ImageTooLargeError) as caught:
        decode_image(_png_header_only(50_000, 50_000), max_pixels=10_000_000)
    assert caught.value.status == 413


def test_pixel_cap_is_configurable(tmp_path):
    data = write_image(tmp_path / "x.png", size=(100, 100)).read_bytes()
    with pytest.raises(ImageTooLargeError, match="100x100"):
        decode_image(data, max_pixels=5_000)
    assert decode_image(data, max_pixels=10_000).width == 100


def test_zero_sized_image_is_corrupt():
    with pytest.raises((CorruptImageError, UnsupportedImageError)):
        decode_image(_png_header_only(0, 0))


def test_encode_and_crop_round_trip():
    rgb = np.arange(30 * 40 * 3, dtype=np.uint8).reshape(30, 40, 3)
    assert np.array_equal(decode_image(encode_image(rgb, "PNG")).rgb, rgb)
    assert crop_box(rgb, 35, 25, 10, 10).shape == (5, 5, 3)  # clipped at the edges
    assert crop_box(rgb, 10, 10, 10, 10, margin=0.5).shape == (20, 20, 3)
