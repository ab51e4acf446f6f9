"""Decoding user images: accepted formats, EXIF orientation, and a clear error for each bad input."""

import io
import threading
import time
import zlib
import struct

import numpy as np
import pytest
from PIL import Image, ImageOps

from hostile_corpus import jpeg_with_orientation, one_colour_png, scan_bomb
from model_server.errors import (CorruptImageError, ImageTooLargeError, ImageTooSlowError, ModelBusyError,
                                 UnsupportedImageError)
from model_server.serving import imaging
from model_server.serving.imaging import count_jpeg_scans, crop_box, decode_image, encode_image
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
    assert caught.value.code == "unsupported_image"


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
    assert caught.value.code == "corrupt_image"


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size; a bomb must be refused from the header alone."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(ImageTooLargeError) as caught:
        decode_image(_png_header_only(50_000, 50_000), max_pixels=10_000_000)
    assert caught.value.code == "image_too_large"


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


def test_a_scan_bomb_is_refused_before_decoding():
    bomb = scan_bomb(2000)  # decoding it took 3 s of CPU; the 330 KB one took 41 s
    started = time.process_time()
    with pytest.raises(ImageTooSlowError, match="scans") as caught:
        decode_image(bomb)
    assert time.process_time() - started < 0.5 and caught.value.code == "image_too_complex"


def test_scans_are_counted_in_the_first_picture_only(tmp_path):
    photo = Image.fromarray(np.full((64, 64, 3), 90, np.uint8))
    progressive, baseline, mpo = io.BytesIO(), io.BytesIO(), io.BytesIO()
    photo.save(progressive, "JPEG", progressive=True)
    photo.save(baseline, "JPEG")
    photo.save(mpo, "MPO", save_all=True, append_images=[photo, photo])
    assert count_jpeg_scans(progressive.getvalue()) == 10  # libjpeg's standard progressive script
    assert count_jpeg_scans(baseline.getvalue()) == 1 and count_jpeg_scans(mpo.getvalue()) == 1


def test_any_decode_has_a_cpu_budget(monkeypatch):
    monkeypatch.setattr(imaging, "MAX_JPEG_SCANS", 10**6)  # let the bomb past the cheap check
    started = time.process_time()
    with pytest.raises(ImageTooSlowError):
        decode_image(scan_bomb(5000), time_budget_s=0.3)  # ~7 s of CPU without the budget
    assert time.process_time() - started < 1.5


def test_a_camera_mpo_decodes_its_first_picture():
    first = np.zeros((40, 60, 3), np.uint8)
    first[:, :30] = 255
    buffer = io.BytesIO()
    Image.fromarray(first).save(buffer, "MPO", save_all=True, append_images=[Image.fromarray(255 - first)])
    image = decode_image(buffer.getvalue())
    assert image.format == "JPEG" and image.rgb.shape == (40, 60, 3)
    assert image.rgb[:, :25].mean() > 200 and image.rgb[:, 35:].mean() < 50  # the first picture, not the second


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(orientation):
    data = jpeg_with_orientation(orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert np.array_equal(decode_image(data).rgb, expected)


def test_reduced_decode_keeps_detail_the_caller_needs_and_reports_the_full_size():
    pixels = np.random.default_rng(0).integers(0, 255, (1500, 2000, 3), np.uint8)
    for format in ("JPEG", "PNG"):
        image = decode_image(encode_image(pixels, format), max_side=640)
        assert 640 <= max(image.width, image.height) < 1280 and image.full_size == (2000, 1500), format
        assert image.width / image.height == pytest.approx(2000 / 1500, rel=0.01)
    sideways = decode_image(jpeg_with_orientation(6), max_side=20)
    assert sideways.full_size == (40, 80) and sideways.height > sideways.width
    assert decode_image(encode_image(pixels, "PNG")).full_size is None  # full size unless asked otherwise


def test_default_pixel_cap_is_a_phone_photo():
    with pytest.raises(ImageTooLargeError):
        decode_image(one_colour_png(6000, 6000))  # 36 MP: only opt-in high-resolution modes write that
    assert decode_image(one_colour_png(5712, 4284)).width == 5712  # a 24 MP iPhone photo


def test_concurrent_large_decodes_share_a_memory_budget(monkeypatch):
    budget = imaging._DecodeMemory(1000)
    with budget.reserve(800, wait_s=1):
        with pytest.raises(ModelBusyError):  # does not fit beside the first; waits, then gives up
            with budget.reserve(300, wait_s=0.05):
                pass
        with budget.reserve(200, wait_s=0.05):  # fits
            assert budget.in_use == 1000
    with budget.reserve(5000, wait_s=0.05):  # bigger than the whole budget: runs alone rather than never
        assert budget.in_use == 5000
    assert budget.in_use == 0


def _peak_rss_mb() -> float:
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    return int(status["VmHWM"].split()[0]) / 1024


def test_sixteen_concurrent_worst_case_pngs_stay_within_the_decode_budget():
    data = one_colour_png(5000, 4990)  # 80 KB, just under the 25 MP cap; 175 MB decoded in Pillow
    try:
        open("/proc/self/clear_refs", "w").write("5")  # start a new peak-memory window
    except OSError:
        pytest.skip("needs Linux /proc to measure peak memory")
    before = _peak_rss_mb()
    errors = []
    threads = [threading.Thread(target=lambda: errors.append(decode_image(data).width != 5000)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [False] * 16
    # Unbounded, 16 at once peaked at 4.1 GB; the budget lets about three run together.
    assert _peak_rss_mb() - before < imaging.DECODE_MEMORY_BUDGET / 2**20 + 200
