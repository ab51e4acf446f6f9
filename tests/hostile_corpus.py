"""A seeded, bounded corpus of hostile and odd images: what attackers, broken clients and odd cameras send.

Every case is built in memory from a seed (no files, no network), small enough for the default test run:
the largest decoded case is 16 MP. ``benchmarks/bench_hostile.py`` asks for more mutations.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

# Refused outright; the corpus tests check these codes, not just "some ImageError".
TOO_LARGE, TOO_COMPLEX, UNSUPPORTED, CORRUPT = "image_too_large", "image_too_complex", "unsupported_image", "corrupt_image"
OK = "ok"
ANY = "any"  # mutated bytes: decoding or a clear ImageError are both right answers


@dataclass(frozen=True)
class Case:
    """One input, what it is, and the answer expected (OK, an error code, or ANY)."""

    name: str
    data: bytes
    expect: str


def _photo(width: int = 160, height: int = 120, seed: int = 0) -> np.ndarray:
    """A smooth RGB test picture (gradients and a disc), so codecs behave as on photos."""
    y, x = np.mgrid[0:height, 0:width]
    disc = ((x - width / 2) ** 2 + (y - height / 2) ** 2) < (min(width, height) / 3) ** 2
    rgb = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), disc * 200 + seed % 50], -1)
    return rgb.astype(np.uint8)


def _save(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its length and CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def raw_png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes, extra: bytes = b"") -> bytes:
    """A PNG written by hand, for forms Pillow will not write (16-bit RGB, lying headers, text bombs)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + extra + png_chunk(b"IDAT", zlib.compress(rows, 9))
            + png_chunk(b"IEND", b""))


def one_colour_png(width: int, height: int) -> bytes:
    """The memory worst case: a tiny file (one colour compresses ~1000:1) that decodes to width x height RGB."""
    row = b"\0" + b"\x80\x40\x20" * width  # filter byte "none", then one colour
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body)
            + png_chunk(b"IEND", b""))


def scan_bomb(scans: int, side: int = 2048) -> bytes:
    """A progressive JPEG whose last scan is repeated ``scans`` times: each costs a pass over every block."""
    clean = _save(Image.fromarray(np.full((side, side, 3), 128, np.uint8)), "JPEG", progressive=True)
    last_scan, end = clean.rfind(b"\xff\xda"), clean.rfind(b"\xff\xd9")
    return clean[:end] + clean[last_scan:end] * scans + clean[end:]


def jpeg_with_orientation(orientation: int) -> bytes:
    """A JPEG whose EXIF says how to turn it upright (phones store photos sideways)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(Image.fromarray(_photo(80, 40)), "JPEG", exif=exif.tobytes())


def _valid_cases() -> list[Case]:
    photo = Image.fromarray(_photo())
    sixteen_bit_rgb = raw_png(40, 30, 16, 2, b"".join(b"\0" + bytes(range(0, 240)) for _ in range(30)))
    cases = [
        Case("jpeg", _save(photo, "JPEG", quality=85), OK),
        Case("jpeg-progressive", _save(photo, "JPEG", progressive=True), OK),
        Case("jpeg-gray", _save(photo.convert("L"), "JPEG"), OK),
        Case("jpeg-cmyk", _save(photo.convert("CMYK"), "JPEG"), OK),
        Case("mpo-two-pictures", _save(photo, "MPO", save_all=True, append_images=[photo.rotate(90)]), OK),
        Case("png-rgb", _save(photo, "PNG"), OK),
        Case("png-rgba", _save(photo.convert("RGBA"), "PNG"), OK),
        Case("png-la", _save(photo.convert("LA"), "PNG"), OK),
        Case("png-palette-transparent", _save(photo.convert("P"), "PNG", transparency=0), OK),
        Case("png-1bit", _save(photo.convert("1"), "PNG"), OK),
        Case("png-16bit-gray", _save(Image.fromarray((_photo()[..., 0].astype(np.uint16) * 257)), "PNG"), OK),
        Case("png-16bit-rgb", sixteen_bit_rgb, OK),
        Case("png-optimised", _save(photo, "PNG", optimize=True), OK),
        Case("webp-lossy", _save(photo, "WEBP", quality=80), OK),
        Case("webp-lossless", _save(photo, "WEBP", lossless=True), OK),
        Case("jpeg-one-pixel", _save(Image.new("RGB", (1, 1)), "JPEG"), OK),
        Case("png-one-colour-16mp", one_colour_png(4000, 4000), OK),
    ]
    cases += [Case(f"jpeg-exif-orientation-{o}", jpeg_with_orientation(o), OK) for o in range(1, 9)]
    cases += [Case(f"jpeg-exif-orientation-bogus-{o}", jpeg_with_orientation(o), OK) for o in (0, 9, 65535)]
    return cases


def _bomb_cases() -> list[Case]:
    return [
        Case("jpeg-scan-bomb", scan_bomb(2000), TOO_COMPLEX),
        Case("png-header-50k-square", raw_png(50_000, 50_000, 8, 2, b"\0" * 10), TOO_LARGE),
        Case("png-one-colour-over-cap", one_colour_png(6000, 6000), TOO_LARGE),
        Case("jpeg-header-65500-square", _jpeg_claiming(65500, 65500), TOO_LARGE),
        Case("webp-header-16383-square", _webp_claiming(16383, 16383), TOO_LARGE),
        Case("png-ztxt-bomb", raw_png(8, 8, 8, 0, b"\0" * 72,
                                      extra=png_chunk(b"zTXt", b"k\0\0" + zlib.compress(b"a" * 50_000_000))), ANY),
        Case("png-zero-size", raw_png(0, 0, 8, 2, b""), ANY),
    ]


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims another size."""
    data = bytearray(_save(Image.fromarray(_photo(16, 16)), "JPEG"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _webp_claiming(width: int, height: int) -> bytes:
    """A VP8X WebP header with a huge canvas and no image data."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (width - 1).to_bytes(3, "little") + (
        height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def _wrong_magic_cases() -> list[Case]:
    photo = Image.fromarray(_photo())
    png = _save(photo, "PNG")
    return [
        Case("empty", b"", CORRUPT),
        Case("gif", _save(photo, "GIF"), UNSUPPORTED),
        Case("bmp", _save(photo, "BMP"), UNSUPPORTED),
        Case("tiff", _save(photo, "TIFF"), UNSUPPORTED),
        Case("pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", UNSUPPORTED),
        Case("html", b"<!doctype html><title>x</title>", UNSUPPORTED),
        Case("nul-bytes", b"\0" * 4096, UNSUPPORTED),
        Case("png-body-behind-jpeg-magic", b"\xff\xd8\xff\xe0" + png[4:], ANY),
        Case("jpeg-body-behind-png-magic", b"\x89PNG\r\n\x1a\n" + _save(photo, "JPEG")[8:], ANY),
        Case("png-signature-only", png[:8], ANY),
        Case("jpeg-soi-only", b"\xff\xd8", ANY),
    ]


def _truncation_cases() -> list[Case]:
    photo = Image.fromarray(_photo())
    cases = []
    for name, data in (("jpeg", _save(photo, "JPEG")), ("jpeg-progressive", _save(photo, "JPEG", progressive=True)),
                       ("png", _save(photo, "PNG")), ("webp", _save(photo, "WEBP"))):
        for fraction in (0.01, 0.1, 0.5, 0.9):
            cases.append(Case(f"{name}-truncated-{fraction:.0%}", data[:max(1, int(len(data) * fraction))], ANY))
        cases.append(Case(f"{name}-last-byte-missing", data[:-1], ANY))
    return cases


def mutations(count: int, seed: int) -> list[Case]:
    """``count`` seeded random corruptions (byte flips, deletions, insertions, splices) of small valid images."""
    rng = random.Random(seed)
    bases = [case.data for case in _valid_cases() if len(case.data) < 200_000]
    cases = []
    for index in range(count):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 8)):
            action, at = rng.randrange(4), rng.randrange(len(data))
            if action == 0:
                data[at] = rng.randrange(256)
            elif action == 1:
                del data[at:at + rng.randint(1, 64)]
            elif action == 2:
                data[at:at] = rng.randbytes(rng.randint(1, 64))
            else:  # splice a marker-looking pair, the bytes parsers branch on
                data[at:at] = rng.choice([b"\xff\xda", b"\xff\xd9", b"\xff\xc0", b"IDAT", b"VP8 "])
        cases.append(Case(f"mutation-{seed}-{index}", bytes(data), ANY))
    return cases


def corpus(seed: int = 0, mutation_count: int = 60) -> list[Case]:
    """Every hand-made case plus ``mutation_count`` seeded mutations."""
    return _valid_cases() + _bomb_cases() + _wrong_magic_cases() + _truncation_cases() + mutations(mutation_count, seed)
