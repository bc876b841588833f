"""Tests for facesearch.vision.image: decoding every supported format, colour modes, and rejections."""

from __future__ import annotations

import io
import pickle
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageOps

from facesearch.vision.image import (
    DEFAULT_MAX_PIXELS,
    REASONS,
    SUPPORTED_EXTENSIONS,
    ImageRejected,
    load_image,
    read_image_bytes,
    sniff_format,
)

SHARED_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "group-photos"

RED = (220, 20, 30)
BLUE = (20, 40, 210)


# --------------------------------------------------------------------------------------------- helpers


def _two_halves(width: int = 64, height: int = 48) -> Image.Image:
    """An RGB picture whose left half is RED and right half is BLUE, so rotations and flips show."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (width // 2, 0, width, height))
    return image


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    """Encode with Pillow, or with pillow-heif for HEIF (without registering its Pillow opener)."""
    buffer = io.BytesIO()
    if fmt == "HEIF":
        pillow_heif.from_pillow(image).save(buffer, quality=95, **options)
    else:
        image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _rejection(source: object, **kwargs: int) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        load_image(source, **kwargs)  # type: ignore[arg-type]
    assert caught.value.reason in REASONS
    assert caught.value.detail
    return caught.value


def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


def _close(pixel: np.ndarray, expected: tuple[int, int, int], tolerance: int) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(expected)) <= tolerance))


# (Pillow format, file suffix, encoder options, colour tolerance): lossy codecs get a tolerance.
FORMATS: list[tuple[str, str, dict[str, object], int]] = [
    ("JPEG", ".jpg", {"quality": 95}, 12),
    ("PNG", ".png", {}, 0),
    ("WEBP", ".webp", {"lossless": True}, 0),
    ("BMP", ".bmp", {}, 0),
    ("TIFF", ".tiff", {}, 0),
    ("GIF", ".gif", {}, 0),
    ("HEIF", ".heic", {}, 12),
]


# --------------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize(("fmt", "suffix", "options", "tolerance"), FORMATS, ids=[f[0] for f in FORMATS])
def test_each_format_decodes_to_rgb_with_right_shape_and_colours(
    tmp_path: Path, fmt: str, suffix: str, options: dict[str, object], tolerance: int
) -> None:
    path = _write(tmp_path, f"photo{suffix}", _encode(_two_halves(64, 48), fmt, **options))

    pixels = load_image(path)

    assert pixels.shape == (48, 64, 3)
    assert pixels.dtype == np.uint8
    assert pixels.flags.c_contiguous and pixels.flags.writeable
    assert _close(pixels[24, 8], RED, tolerance), pixels[24, 8]
    assert _close(pixels[24, 56], BLUE, tolerance), pixels[24, 56]
    # The same content given as bytes decodes identically.
    assert np.array_equal(load_image(path.read_bytes()), pixels)
    # str paths work as well as Path objects.
    assert np.array_equal(load_image(str(path)), pixels)


@pytest.mark.parametrize(
    ("fmt", "kind"),
    [
        ("JPEG", "jpeg"),
        ("PNG", "png"),
        ("WEBP", "webp"),
        ("BMP", "bmp"),
        ("TIFF", "tiff"),
        ("GIF", "gif"),
        ("HEIF", "heif"),
    ],
)
def test_sniff_format_recognises_generated_files(fmt: str, kind: str) -> None:
    assert sniff_format(_encode(_two_halves(16, 16), fmt)) == kind


def test_format_is_taken_from_content_not_file_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "really_a_png.jpg", _encode(_two_halves(), "PNG"))
    assert load_image(path)[0, 0].tolist() == list(RED)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "pdf"),
        (b"PK\x03\x04\x14\x00\x00\x00", "zip"),
        (b"\x1f\x8b\x08\x00\x00\x00", "gzip"),
        (b"<!DOCTYPE html>\n<html><body>hi</body></html>", "html"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>', "svg"),
        (b'<?xml version="1.0"?>\n<note/>', "xml"),
        (b'{"a": 1}', "json"),
        (b"just some notes\nabout a photo\n", "text"),
        (b"MZ is how my notes start\n", "text"),  # weak 2-byte signatures do not override text
        (b"MZ\x90\x00\x03\x00\x00\x00", "exe"),
        (b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00avifmif1", "avif"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "heif"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", "video"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio"),
        (b"8BPS\x00\x01", "psd"),
        (b"P6\n# made by hand\n2 2\n255\n", "netpbm"),
        (b"P1 is my first point\n", "text"),
        (b"BMW photos from the trip\n", "text"),  # "BM" without a real DIB header is not a bitmap
        (b"", None),
        (b"\x00\x01\x02\x03\x04\x05\x06\x07" * 8, None),
    ],
)
def test_sniff_format_kinds(data: bytes, kind: str | None) -> None:
    assert sniff_format(data) == kind


def test_gif_animation_returns_first_frame() -> None:
    frames = [Image.new("RGB", (20, 10), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(io.BytesIO(data)) as check:
        assert getattr(check, "n_frames", 1) == 3  # the fixture really is animated

    pixels = load_image(data)

    assert pixels.shape == (10, 20, 3)
    assert np.all(pixels == (255, 0, 0))


def test_multipage_tiff_and_animated_webp_return_first_frame() -> None:
    first, second = Image.new("RGB", (12, 8), (0, 200, 0)), Image.new("RGB", (12, 8), (0, 0, 200))
    tiff = _encode(first, "TIFF", save_all=True, append_images=[second])
    webp = _encode(first, "WEBP", save_all=True, append_images=[second], lossless=True, duration=50)

    assert np.all(load_image(tiff) == (0, 200, 0))
    assert np.all(load_image(webp) == (0, 200, 0))


# --------------------------------------------------------------------------------------------- orientation


@pytest.mark.parametrize(
    ("orientation", "shape", "red_at", "blue_at"),
    [
        (1, (48, 64, 3), (24, 8), (24, 56)),  # as stored: red left, blue right
        (3, (48, 64, 3), (24, 56), (24, 8)),  # rotated 180: red right
        (6, (64, 48, 3), (8, 24), (56, 24)),  # rotated 90 clockwise: the left half ends on top
        (8, (64, 48, 3), (56, 24), (8, 24)),  # rotated 90 counter-clockwise: the left half at the bottom
        (2, (48, 64, 3), (24, 56), (24, 8)),  # mirrored: red right
    ],
)
def test_exif_orientation_is_applied(
    orientation: int, shape: tuple[int, int, int], red_at: tuple[int, int], blue_at: tuple[int, int]
) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(_two_halves(64, 48), "JPEG", quality=95, exif=exif.tobytes())

    pixels = load_image(data)

    assert pixels.shape == shape
    assert _close(pixels[red_at], RED, 12), pixels[red_at]
    assert _close(pixels[blue_at], BLUE, 12), pixels[blue_at]


def test_exif_orientation_in_png_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    pixels = load_image(_encode(_two_halves(64, 48), "PNG", exif=exif.tobytes()))
    assert pixels.shape == (64, 48, 3)
    assert pixels[8, 24].tolist() == list(RED)
    assert pixels[56, 24].tolist() == list(BLUE)


def test_heif_orientation_is_applied_once_not_twice() -> None:
    # pillow-heif stores the EXIF orientation as a HEIF rotation that libheif applies while decoding and
    # resets the EXIF tag, so exif_transpose must not rotate a second time.
    exif = Image.Exif()
    exif[0x0112] = 6
    pixels = load_image(_encode(_two_halves(64, 48), "HEIF", exif=exif.tobytes()))
    assert pixels.shape == (64, 48, 3)
    assert _close(pixels[8, 24], RED, 12), pixels[8, 24]
    assert _close(pixels[56, 24], BLUE, 12), pixels[56, 24]


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # Pillow's expected complaint
def test_damaged_exif_does_not_reject_the_photo() -> None:
    data = _encode(_two_halves(), "JPEG", quality=95, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff")
    pixels = load_image(data)
    assert pixels.shape == (48, 64, 3)
    assert _close(pixels[24, 8], RED, 12)


# --------------------------------------------------------------------------------------------- colour modes


def test_grayscale_l_becomes_three_equal_channels() -> None:
    pixels = load_image(_encode(Image.new("L", (5, 4), 77), "PNG"))
    assert pixels.shape == (4, 5, 3)
    assert np.all(pixels == 77)


def test_bilevel_mode_1_maps_to_black_and_white() -> None:
    image = Image.new("1", (8, 2), 0)
    image.paste(1, (4, 0, 8, 2))
    pixels = load_image(_encode(image, "PNG"))
    assert np.all(pixels[:, :4] == 0)
    assert np.all(pixels[:, 4:] == 255)


def test_palette_image_uses_palette_colours() -> None:
    image = Image.new("P", (4, 2), 0)
    image.putpalette([10, 20, 30, 200, 150, 100] + [0] * (256 * 3 - 6))
    image.paste(1, (2, 0, 4, 2))
    pixels = load_image(_encode(image, "PNG"))
    assert pixels[0, 0].tolist() == [10, 20, 30]
    assert pixels[1, 3].tolist() == [200, 150, 100]


def test_palette_transparency_is_composited_on_white() -> None:
    image = Image.new("P", (4, 2), 0)
    image.putpalette([10, 20, 30, 200, 150, 100] + [0] * (256 * 3 - 6))
    image.paste(1, (2, 0, 4, 2))
    for fmt in ("PNG", "GIF"):
        pixels = load_image(_encode(image, fmt, transparency=0))
        assert pixels[0, 0].tolist() == [255, 255, 255], fmt  # transparent palette entry
        assert pixels[1, 3].tolist() == [200, 150, 100], fmt


def test_rgba_alpha_is_composited_on_white() -> None:
    image = Image.new("RGBA", (3, 1))
    image.putpixel((0, 0), (255, 0, 0, 255))  # opaque: unchanged
    image.putpixel((1, 0), (255, 0, 0, 0))  # fully transparent: white
    image.putpixel((2, 0), (0, 0, 0, 128))  # half transparent black over white: mid grey
    for fmt, options in (("PNG", {}), ("WEBP", {"lossless": True}), ("TIFF", {})):
        pixels = load_image(_encode(image, fmt, **options))
        assert pixels[0, 0].tolist() == [255, 0, 0], fmt
        assert pixels[0, 1].tolist() == [255, 255, 255], fmt
        assert np.all(np.abs(pixels[0, 2].astype(int) - 127) <= 1), (fmt, pixels[0, 2])


def test_grayscale_with_alpha_is_composited_on_white() -> None:
    image = Image.new("LA", (2, 1))
    image.putpixel((0, 0), (40, 255))
    image.putpixel((1, 0), (40, 0))
    pixels = load_image(_encode(image, "PNG"))
    assert pixels[0, 0].tolist() == [40, 40, 40]
    assert pixels[0, 1].tolist() == [255, 255, 255]


def test_cmyk_is_converted_to_rgb() -> None:
    image = Image.new("CMYK", (4, 1), (0, 0, 0, 0))  # no ink: white
    image.putpixel((1, 0), (255, 0, 0, 0))  # full cyan
    image.putpixel((2, 0), (0, 0, 0, 255))  # full black
    image.putpixel((3, 0), (0, 255, 255, 0))  # magenta + yellow: red

    tiff = load_image(_encode(image, "TIFF"))
    assert tiff.tolist() == [[[255, 255, 255], [0, 255, 255], [0, 0, 0], [255, 0, 0]]]

    solid = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    jpeg = load_image(_encode(solid, "JPEG", quality=95))  # Pillow writes Adobe (inverted) CMYK JPEGs
    assert jpeg.shape == (16, 16, 3)
    assert _close(jpeg[8, 8], (0, 255, 255), 6), jpeg[8, 8]


def test_16_bit_grayscale_is_scaled_not_clipped() -> None:
    values = np.array([[0, 257, 32768, 65535, 257 * 100]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    for fmt in ("PNG", "TIFF"):
        pixels = load_image(_encode(image, fmt))
        assert pixels.shape == (1, 5, 3)
        assert pixels[0, :, 0].tolist()[:2] == [0, 1], fmt
        assert abs(int(pixels[0, 2, 0]) - 128) <= 1, fmt
        assert pixels[0, 3, 0] == 255, fmt
        assert pixels[0, 4, 0] == 100, fmt
        assert np.all(pixels[..., 0] == pixels[..., 1]) and np.all(pixels[..., 1] == pixels[..., 2])


def test_16_bit_big_endian_tiff_is_scaled() -> None:
    values = np.array([[0, 32768, 65535]], dtype=">u2")
    image = Image.fromarray(values)
    assert image.mode == "I;16B"
    pixels = load_image(_encode(image, "TIFF"))
    assert pixels[0, :, 0].tolist() == [0, 128, 255]


def test_16_bit_rgb_png_is_reduced_to_8_bit() -> None:
    # 16-bit RGB PNG: IHDR bit depth 16, colour type 2; one pixel (65535, 32768, 0), unfiltered.
    raw = b"\x00" + struct.pack(">HHH", 65535, 32768, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 16, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )
    assert load_image(data).tolist() == [[[255, 128, 0]]]


def test_32_bit_integer_tiff() -> None:
    # Within 0..255 the values are kept, within 0..65535 they are read as 16-bit, otherwise stretched.
    small = Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32))
    assert small.mode == "I"
    assert load_image(_encode(small, "TIFF"))[0, :, 0].tolist() == [0, 100, 255]

    sixteen = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32))
    assert load_image(_encode(sixteen, "TIFF"))[0, :, 0].tolist() == [0, 128, 255]

    wide = Image.fromarray(np.array([[-1000, 0, 1000, 99000]], dtype=np.int32))
    assert load_image(_encode(wide, "TIFF"))[0, :, 0].tolist() == [0, 3, 5, 255]


def test_32_bit_float_tiff() -> None:
    unit = Image.fromarray(np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32))
    assert unit.mode == "F"
    assert load_image(_encode(unit, "TIFF"))[0, :, 0].tolist() == [0, 64, 128, 255]

    byte_range = Image.fromarray(np.array([[0.0, 17.0, 254.6]], dtype=np.float32))
    assert load_image(_encode(byte_range, "TIFF"))[0, :, 0].tolist() == [0, 17, 255]

    # Out of range values are stretched; NaN carries no brightness and becomes 0 before stretching.
    wild = Image.fromarray(np.array([[-2.0, 0.0, 2.0, np.nan]], dtype=np.float32))
    assert load_image(_encode(wild, "TIFF"))[0, :, 0].tolist() == [0, 128, 255, 128]


# --------------------------------------------------------------------------------------------- rejections


def test_empty_file_and_empty_bytes(tmp_path: Path) -> None:
    assert _rejection(_write(tmp_path, "empty.jpg", b"")).reason == "empty_file"
    assert _rejection(b"").reason == "empty_file"
    with pytest.raises(ImageRejected) as caught:
        read_image_bytes(tmp_path / "empty.jpg")
    assert caught.value.reason == "empty_file"


def test_pdf_named_jpg_is_not_an_image(tmp_path: Path) -> None:
    pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    rejected = _rejection(_write(tmp_path, "holiday.jpg", pdf))
    assert rejected.reason == "not_an_image"
    assert "PDF document" in rejected.detail


def test_html_saved_as_jpg_is_not_an_image(tmp_path: Path) -> None:
    html = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not Found</body></html>"
    rejected = _rejection(_write(tmp_path, "download.jpg", html))
    assert rejected.reason == "not_an_image"
    assert "HTML" in rejected.detail


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"PK\x03\x04" + b"\x00" * 40, "ZIP archive"),
        (b"plain notes, nothing else\n", "plain text"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 40, "video"),
    ],
)
def test_other_non_images_say_what_they_are(data: bytes, words: str) -> None:
    rejected = _rejection(data)
    assert rejected.reason == "not_an_image"
    assert words in rejected.detail


def test_random_bytes_are_not_an_image() -> None:
    data = np.random.default_rng(1234).bytes(20_000)
    assert sniff_format(data) is None  # the seed gives no accidental signature
    rejected = _rejection(data)
    assert rejected.reason == "not_an_image"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>', "SVG"),
        (b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00avifmif1" + b"\x00" * 40, "AVIF"),
        (b"8BPS\x00\x01" + b"\x00" * 40, "Photoshop"),
    ],
)
def test_known_but_unsupported_picture_formats(data: bytes, words: str) -> None:
    rejected = _rejection(data)
    assert rejected.reason == "unsupported_format"
    assert words in rejected.detail


def test_truncated_jpeg_is_corrupt(tmp_path: Path) -> None:
    # Noise, so that the entropy-coded data is large and cutting it in half really loses pixels.
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), "JPEG", quality=90)
    rejected = _rejection(_write(tmp_path, "half.jpg", data[: len(data) // 2]))
    assert rejected.reason == "corrupt"
    assert "truncated" in rejected.detail


@pytest.mark.parametrize(("fmt", "suffix"), [("PNG", ".png"), ("TIFF", ".tif"), ("GIF", ".gif"), ("WEBP", ".webp")])
def test_truncated_files_of_other_formats_are_corrupt(tmp_path: Path, fmt: str, suffix: str) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), fmt)
    assert _rejection(_write(tmp_path, f"half{suffix}", data[: len(data) // 2])).reason == "corrupt"


def test_valid_signature_with_garbage_is_corrupt() -> None:
    assert _rejection(b"\xff\xd8\xff" + b"garbage" * 20).reason == "corrupt"
    assert _rejection(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30).reason == "corrupt"


def test_missing_file_and_directory_are_unreadable(tmp_path: Path) -> None:
    missing = _rejection(tmp_path / "nope.jpg")
    assert missing.reason == "unreadable"
    assert "nope.jpg" in missing.detail
    assert _rejection(tmp_path).reason == "unreadable"
    with pytest.raises(ImageRejected) as caught:
        read_image_bytes(tmp_path / "nope.jpg")
    assert caught.value.reason == "unreadable"


def test_read_image_bytes_returns_content(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.bin", b"\x01\x02\x03")
    assert read_image_bytes(path) == b"\x01\x02\x03"


def test_max_pixels_must_be_positive() -> None:
    with pytest.raises(ValueError):
        load_image(_encode(_two_halves(), "PNG"), max_pixels=0)


# --------------------------------------------------------------------------------------------- size limits


def test_png_declaring_100000_by_100000_is_rejected_fast() -> None:
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + _png_chunk(b"IEND", b"")
    )
    started = time.perf_counter()
    rejected = _rejection(data)
    elapsed = time.perf_counter() - started
    assert rejected.reason == "too_large"
    assert "100000x100000" in rejected.detail
    assert elapsed < 1.0  # decoding 30 GB of pixels would take far longer, or fail on memory


def _patch_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    at = data.index(b"\xff\xc0")  # baseline SOF0: marker, length (2), precision (1), height (2), width (2)
    return data[: at + 5] + struct.pack(">HH", height, width) + data[at + 9 :]


@pytest.mark.parametrize("kind", ["jpeg", "gif", "webp"])
def test_other_bomb_headers_are_rejected_fast(kind: str) -> None:
    if kind == "jpeg":
        data = _patch_jpeg_size(_encode(_two_halves(16, 16), "JPEG"), 60_000, 60_000)
    elif kind == "gif":
        gif = _encode(_two_halves(16, 16), "GIF")
        data = gif[:6] + struct.pack("<HH", 65_535, 65_535) + gif[10:]  # logical screen size
    else:
        # Extended WebP header declaring the largest canvas (16384 x 16384); Pillow's WebP plugin would
        # allocate the canvas while opening, so this has to be caught from the raw header.
        vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (16383).to_bytes(3, "little") * 2
        data = b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x
    started = time.perf_counter()
    rejected = _rejection(data)
    assert rejected.reason == "too_large"
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(("fmt", "suffix", "options", "tolerance"), FORMATS, ids=[f[0] for f in FORMATS])
def test_max_pixels_boundary_for_every_format(
    fmt: str, suffix: str, options: dict[str, object], tolerance: int
) -> None:
    data = _encode(_two_halves(40, 30), fmt, **options)
    assert load_image(data, max_pixels=1200).shape == (30, 40, 3)  # exactly at the limit: accepted
    rejected = _rejection(data, max_pixels=1199)
    assert rejected.reason == "too_large"
    assert "40x30" in rejected.detail and "1,200" in rejected.detail


def test_wide_50000_by_200_image_decodes() -> None:
    image = Image.new("RGB", (50_000, 200), (10, 20, 30))
    image.paste((250, 240, 230), (49_990, 0, 50_000, 200))
    pixels = load_image(_encode(image, "PNG"))
    assert pixels.shape == (200, 50_000, 3)
    assert pixels[100, 0].tolist() == [10, 20, 30]
    assert pixels[199, 49_999].tolist() == [250, 240, 230]


def test_pillow_bomb_guard_never_interferes(monkeypatch: pytest.MonkeyPatch) -> None:
    # With Pillow's own guard far below the picture size, Pillow alone would warn (over 1x) or raise
    # DecompressionBombError (over 2x); load_image must neither warn nor fail, since our limit counts.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    data = _encode(_two_halves(64, 48), "PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(data).shape == (48, 64, 3)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
        assert _rejection(data, max_pixels=1000).reason == "too_large"


def test_default_limit_is_100_megapixels() -> None:
    assert DEFAULT_MAX_PIXELS == 100_000_000


# --------------------------------------------------------------------------------------------- API details


def test_supported_extensions() -> None:
    expected = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif"}
    assert expected == SUPPORTED_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in SUPPORTED_EXTENSIONS)


def test_reason_codes() -> None:
    assert {"empty_file", "not_an_image", "unsupported_format", "corrupt", "too_large", "unreadable"} <= set(REASONS)


def test_image_rejected_carries_reason_and_detail_and_pickles() -> None:
    error = ImageRejected("corrupt", "the JPEG file is truncated")
    assert error.reason == "corrupt"
    assert error.detail == "the JPEG file is truncated"
    assert str(error) == "corrupt: the JPEG file is truncated"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.detail) == (error.reason, error.detail)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the damaged TIFF/EXIF tags
def test_fuzzed_images_only_raise_image_rejected() -> None:
    # Flip bytes in valid files of every format: the result is either a picture or ImageRejected.
    rng = np.random.default_rng(7)
    base = _two_halves(32, 24)
    for fmt, _suffix, options, _tolerance in FORMATS:
        data = bytearray(_encode(base, fmt, **options))
        for _ in range(15):
            mutated = bytearray(data)
            for position in rng.integers(0, len(mutated), 6):
                mutated[position] = int(rng.integers(0, 256))
            try:
                pixels = load_image(bytes(mutated), max_pixels=10_000_000)
            except ImageRejected as rejected:
                assert rejected.reason in REASONS
            else:
                assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3


# --------------------------------------------------------------------------------------------- shared photos


def _shared_photos() -> Path:
    if not SHARED_PHOTOS.is_dir():
        pytest.skip(f"shared test photos not found at {SHARED_PHOTOS} (the ../shared checkout is absent)")
    return SHARED_PHOTOS


def test_shared_astronaut_png() -> None:
    path = _shared_photos() / "astronaut.png"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with Image.open(path) as reference:
        width, height = reference.size
        expected = np.asarray(reference.convert("RGB"))
    pixels = load_image(path)
    assert pixels.shape == (height, width, 3)
    assert np.array_equal(pixels, expected)


def test_shared_jpeg() -> None:
    jpegs = sorted(_shared_photos().glob("*.jpg"))
    if not jpegs:
        pytest.skip(f"no .jpg in {SHARED_PHOTOS}")
    for path in jpegs[:3]:
        with Image.open(path) as reference:
            upright = ImageOps.exif_transpose(reference).convert("RGB")
        pixels = load_image(path)
        assert pixels.shape == (upright.height, upright.width, 3)
        assert np.array_equal(pixels, np.asarray(upright))
