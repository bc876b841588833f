"""Decode any photo into an RGB ``uint8`` array of shape (H, W, 3), or reject it with a reason.

Everything that reaches a face detector goes through :func:`load_image`, so this is the one place that
deals with what people actually keep in photo folders: PDFs and web pages saved as ``.jpg``, half-copied
files, 16-bit scans, CMYK print files, transparent PNGs, phone HEICs and files crafted to exhaust memory.
Bad input never raises anything but :class:`ImageRejected`, whose ``reason`` is one of :data:`REASONS`,
so an ingest can count and report rejections instead of crashing on them.

The format is decided from the content (magic bytes), never from the file name: the name is only used by
:data:`SUPPORTED_EXTENSIONS` to decide which files of a folder are worth opening at all.

Pillow's process-wide decompression-bomb guard (``PIL.Image.MAX_IMAGE_PIXELS``) is switched off by
:func:`load_image`: its default (~89.5 Mpx) is below :data:`DEFAULT_MAX_PIXELS`, and it warns rather than
fails between one and two times its limit, so it would both reject pictures we accept and let warnings out.
Our own ``max_pixels`` limit replaces it and is checked from the header, before any pixel is decoded.
"""

from __future__ import annotations

import io
import math
import os
import re
import stat
import struct
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

T = TypeVar("T")

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "REASONS",
    "SUPPORTED_EXTENSIONS",
    "ImageRejected",
    "load_image",
    "read_image_bytes",
    "sniff_format",
]

DEFAULT_MAX_PIXELS: Final[int] = 100_000_000
"""Largest accepted picture, in pixels (width x height): 100 Mpx, above any phone or consumer camera."""

REASONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "empty_file": "the file has no content (0 bytes)",
        "not_an_image": "the content is not a picture (for example a PDF, a web page or an archive)",
        "unsupported_format": "a picture format or colour mode that facesearch does not decode",
        "corrupt": "the picture is truncated or its data cannot be decoded",
        "too_large": "the picture has more pixels than allowed (decompression-bomb guard)",
        "unreadable": "the file cannot be read (missing, not a regular file, no permission, I/O error)",
    }
)
"""Every ``ImageRejected.reason`` code, mapped to a one-line explanation for reports."""

SUPPORTED_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif"}
)
"""File suffixes (lower case, with the dot) that an ingest of a folder should consider."""


class ImageRejected(Exception):
    """Raised when a file cannot be used as a photo.

    ``reason`` is a short machine code from :data:`REASONS`; ``detail`` is a sentence for a person.
    """

    def __init__(self, reason: str, detail: str) -> None:
        # Both values go to Exception.args so that the exception survives pickling, which matters when an
        # ingest decodes in worker processes and sends failures back to the parent.
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


# Kinds returned by sniff_format that load_image decodes, with Pillow's format id for each.
_DECODABLE: Final[Mapping[str, str]] = MappingProxyType(
    {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP", "tiff": "TIFF", "gif": "GIF", "heif": "HEIF"}
)

# Kinds that are pictures, but not ones we decode (or not reliably): reason "unsupported_format".
_UNSUPPORTED_IMAGE_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "avif": "an AVIF image",
        "svg": "an SVG vector drawing",
        "ico": "a Windows icon",
        "psd": "a Photoshop document",
        "xcf": "a GIMP document",
        "jpeg2000": "a JPEG 2000 image",
        "jxl": "a JPEG XL image",
        "raw": "a camera RAW file",
        "eps": "a PostScript/EPS drawing",
        "exr": "an OpenEXR image",
        "qoi": "a QOI image",
        "dds": "a DirectDraw surface",
        "netpbm": "a Netpbm (PBM/PGM/PPM) image",
        "hdr": "a Radiance HDR image",
    }
)

# Kinds that are not pictures at all: reason "not_an_image". Values name the kind in the detail sentence.
_NON_IMAGE_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "pdf": "a PDF document",
        "zip": "a ZIP archive (or a .docx/.xlsx/.epub document, which are ZIP files)",
        "gzip": "a gzip-compressed file",
        "bzip2": "a bzip2-compressed file",
        "xz": "an xz-compressed file",
        "7z": "a 7-Zip archive",
        "rar": "a RAR archive",
        "ole": "a legacy Microsoft Office document",
        "rtf": "an RTF document",
        "elf": "an executable program (ELF)",
        "exe": "a Windows executable",
        "sqlite": "an SQLite database",
        "video": "a video file",
        "audio": "an audio file",
        "html": "an HTML web page",
        "xml": "an XML document",
        "json": "a JSON text",
        "text": "a plain text file",
    }
)

# Fixed signatures at offset 0, checked in order. Longer, more specific ones come first.
_SIGNATURES: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jpeg2000"),
    (b"\xff\x4f\xff\x51", "jpeg2000"),  # raw JPEG 2000 codestream
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jxl"),
    (b"\xff\x0a", "jxl"),  # raw JPEG XL codestream
    (b"8BPS", "psd"),
    (b"gimp xcf", "xcf"),
    (b"qoif", "qoi"),
    (b"DDS ", "dds"),
    (b"\x76\x2f\x31\x01", "exr"),
    (b"#?RADIANCE", "hdr"),
    (b"#?RGBE", "hdr"),
    (b"FUJIFILMCCD-RAW", "raw"),
    (b"IIU\x00", "raw"),  # Panasonic RW2
    (b"IIRO", "raw"),  # Olympus ORF
    (b"IIRS", "raw"),
    (b"MMOR", "raw"),
    (b"%!PS", "eps"),
    (b"\xc5\xd0\xd3\xc6", "eps"),  # DOS EPS binary header
    (b"%PDF", "pdf"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),  # empty archive
    (b"PK\x07\x08", "zip"),  # spanned archive
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"),
    (b"{\\rtf", "rtf"),
    (b"\x7fELF", "elf"),
    (b"SQLite format 3\x00", "sqlite"),
    (b"\x1a\x45\xdf\xa3", "video"),  # Matroska / WebM
    (b"OggS", "audio"),
    (b"fLaC", "audio"),
)

# Two- and three-byte signatures that a text file could also start with ("MZ...", "ID3 notes"); the
# binary files they stand for never pass as text, so they are checked after the text test.
_WEAK_SIGNATURES: Final[tuple[tuple[bytes, str], ...]] = (
    (b"MZ", "exe"),
    (b"BZh", "bzip2"),
    (b"ID3", "audio"),  # MP3 with an ID3 tag
)

# Netpbm: "P1".."P7", whitespace, optional comment lines, then the width. P1-P3 are pure ASCII, so this
# has to be tested before the text test, and strictly enough that a note starting "P1 " stays text.
_NETPBM: Final[re.Pattern[bytes]] = re.compile(rb"P[1-7]\s+(?:#[^\n]*\n\s*)*\d")

# ISO base media ("ftyp") brands. HEIF stills and sequences, including Apple's HEIC.
_HEIF_BRANDS: Final[frozenset[bytes]] = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"heif"}
)
# Generic image-container brands that both HEIF and AVIF files use; decided by the other brands listed.
_GENERIC_IMAGE_BRANDS: Final[frozenset[bytes]] = frozenset({b"mif1", b"msf1", b"mif2", b"miaf"})
_AVIF_BRANDS: Final[frozenset[bytes]] = frozenset({b"avif", b"avis"})
_AUDIO_BRANDS: Final[frozenset[bytes]] = frozenset({b"M4A ", b"M4B ", b"M4P "})

# DIB header sizes a real BMP can have; checked because a 2-byte "BM" alone would also match text.
_BMP_HEADER_SIZES: Final[frozenset[int]] = frozenset({12, 16, 40, 52, 56, 64, 108, 124})

_TEXT_SNIFF_BYTES: Final[int] = 1024
_EXIF_ORIENTATION_TAG: Final[int] = 0x0112
_ALPHA_MODES: Final[frozenset[str]] = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})

_heif_lock = threading.Lock()
_heif_registered = False


def sniff_format(data: bytes) -> str | None:
    """Identify the kind of content from its first bytes, ignoring any file name.

    Returns ``"jpeg"``, ``"png"``, ``"webp"``, ``"bmp"``, ``"tiff"``, ``"gif"`` or ``"heif"`` for the
    picture formats :func:`load_image` decodes; another picture kind it does not decode (``"avif"``,
    ``"svg"``, ``"ico"``, ``"psd"``, ``"jpeg2000"``, ``"jxl"``, ``"raw"``, ...); a non-picture kind
    (``"pdf"``, ``"zip"``, ``"gzip"``, ``"html"``, ``"xml"``, ``"json"``, ``"text"``, ``"video"``,
    ``"audio"``, ``"exe"``, ...); or ``None`` when the content matches nothing known (including empty data).
    Only the first few kilobytes are looked at.
    """
    head = bytes(data[:4096])
    if not head:
        return None
    if head[8:12] == b"WEBP" and head.startswith(b"RIFF"):
        return "webp"
    if head.startswith(b"RIFF"):
        # Other RIFF containers: WAVE audio, AVI video.
        return "audio" if head[8:12] == b"WAVE" else "video"
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    if head.startswith(b"BM") and len(head) >= 18 and struct.unpack_from("<I", head, 14)[0] in _BMP_HEADER_SIZES:
        return "bmp"
    if head.startswith((b"\x00\x00\x01\x00", b"\x00\x00\x02\x00")) and head[4:6] not in (b"", b"\0\0"):
        return "ico"  # ICO / CUR: reserved 0, type 1 or 2, then a non-zero image count
    if head.startswith(b"II*\x00") and head[8:10] == b"CR":
        return "raw"  # Canon CR2 is a TIFF container whose first image is a small preview
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if _NETPBM.match(head):
        return "netpbm"
    if _looks_like_text(head[:_TEXT_SNIFF_BYTES]):
        return _sniff_text(head[:_TEXT_SNIFF_BYTES])
    for signature, kind in _WEAK_SIGNATURES:
        if head.startswith(signature):
            return kind
    return None


def _sniff_ftyp(head: bytes) -> str:
    """Tell HEIF from AVIF, camera RAW and plain MP4/MOV by the brands of an ISO ``ftyp`` box."""
    box_size = struct.unpack_from(">I", head, 0)[0]
    # Major brand at 8, minor version at 12, then compatible brands up to the end of the box.
    brands = {head[8:12]}
    brands.update(head[i : i + 4] for i in range(16, min(box_size, len(head)) - 3, 4))
    if brands & _HEIF_BRANDS:
        return "heif"
    if brands & _AVIF_BRANDS:
        return "avif"
    if brands & _GENERIC_IMAGE_BRANDS:
        return "heif"
    if b"crx " in brands:
        return "raw"  # Canon CR3
    if head[8:12] in _AUDIO_BRANDS:
        return "audio"
    return "video"


def _looks_like_text(head: bytes) -> bool:
    """True when the bytes read as text (UTF-8/ASCII, or UTF-16 with a byte-order mark)."""
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return True
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut in two by our prefix is still text; an invalid byte earlier is not.
        if exc.start < len(head) - 3:
            return False
    controls = sum(1 for byte in head if byte < 32 and byte not in b"\t\n\r\f\x1b")
    return controls * 100 <= len(head)


def _sniff_text(head: bytes) -> str:
    """Name the kind of a text file: ``html``, ``svg``, ``xml``, ``json`` or ``text``."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head.decode("utf-16", errors="ignore")
    else:
        text = head.decode("utf-8", errors="ignore")
    start = text.lstrip("\ufeff \t\r\n").lower()
    if start.startswith(("<!doctype html", "<html")) or "<html" in start or "<body" in start:
        return "html"
    if "<svg" in start:
        return "svg"
    if start.startswith("<?xml"):
        return "xml"
    if start.startswith(("{", "[")):
        return "json"
    return "text"


def read_image_bytes(path: str | os.PathLike[str]) -> bytes:
    """Read a whole file into memory for :func:`load_image`.

    Raises :class:`ImageRejected` with reason ``"unreadable"`` when the file is missing, is not a regular
    file (a directory, a pipe, a device), cannot be opened or fails to read, and ``"empty_file"`` when it
    has no content.
    """
    name = os.fspath(path)
    try:
        # Stat first: opening a FIFO would block forever and reading a device such as /dev/zero never ends.
        mode = os.stat(name).st_mode
        if not stat.S_ISREG(mode):
            what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise ImageRejected("unreadable", f"{name} is {what}")
        with open(name, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ImageRejected("unreadable", f"cannot read {name}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # e.g. a NUL byte inside the path
        raise ImageRejected("unreadable", f"cannot read {name!r}: {exc}") from exc
    if not data:
        raise ImageRejected("empty_file", f"{name} is empty (0 bytes)")
    return data


def load_image(source: str | os.PathLike[str] | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a photo into a new, writable, C-contiguous RGB ``uint8`` array of shape (H, W, 3).

    ``source`` is a path, or the file's content as ``bytes``. The format is recognised from the content
    (see :func:`sniff_format`), whatever the file is called. JPEG, PNG, WebP, BMP, TIFF, GIF and HEIF/HEIC
    are decoded; for animations and multi-page files the first frame is returned. The EXIF orientation is
    applied, so the array is upright as a viewer would show it. Transparent areas are composited on white.
    Grayscale, palette, CMYK and other colour modes are converted to RGB; 16-bit samples are scaled to
    8 bits (65535 -> 255, 32768 -> 128); 32-bit integer and floating-point samples are mapped to 0..255
    (integers within 0..255 as they are, within 0..65535 as 16-bit; floats within 0..1 as fractions,
    within 0..255 as they are; anything else is stretched from its minimum to its maximum).

    Pictures with more than ``max_pixels`` pixels are rejected from the header, before decoding, so a
    decompression bomb costs neither time nor memory.

    Raises :class:`ImageRejected` (and nothing else) for unusable input, with ``reason`` one of
    :data:`REASONS`. Raises :class:`ValueError` only for a ``max_pixels`` below 1 (a programming error).
    """
    return decode_upright(source, max_pixels=max_pixels, convert=lambda image, _scale: _to_rgb_array(image))


def decode_upright(
    source: str | os.PathLike[str] | bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    convert: Callable[[Image.Image, float], T],
    scale_at_least: float = 1.0,
    side_at_least: int | None = None,
) -> T:
    """Decode a photo as :func:`load_image` does (same checks, same errors), turn it upright, and return what
    ``convert(picture, scale)`` makes of it (the picture is only valid during that call).

    With ``scale_at_least`` below 1 a JPEG may be decoded at a reduced size (1/2, 1/4 or 1/8, its decoder's
    own reduction, far cheaper than decoding it whole), never smaller than that fraction of its size;
    ``scale`` is the one reached (1.0 for other formats). A face crop of a large photo needs no more.
    ``side_at_least`` sets that fraction from the header instead: the longer side decoded is at least this.
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be at least 1, got {max_pixels}")
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if not data:
            raise ImageRejected("empty_file", "the data is empty (0 bytes)")
    else:
        data = read_image_bytes(source)

    kind = sniff_format(data)
    pil_format = _pil_format_for(kind, data)
    description = f"{kind.upper()} file" if kind else "file"

    if kind == "webp":
        # Pillow's WebP plugin allocates the whole canvas while *opening* the file, so the limit has to be
        # checked on the raw header first.
        canvas = _webp_canvas_size(data)
        if canvas is not None:
            _check_pixel_count(canvas, max_pixels)
    if kind == "heif" and not _ensure_heif_opener():
        raise ImageRejected("unsupported_format", "HEIF/HEIC needs the pillow-heif package, which is missing")

    # Set on every call rather than once, in case other code has switched the guard back on since.
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(io.BytesIO(data), formats=[pil_format]) as opened:
            # Opening parsed the header only: the size is known, no pixel has been decoded yet.
            _check_pixel_count(opened.size, max_pixels)
            full_width = opened.size[0]
            if side_at_least is not None:
                scale_at_least = min(1.0, side_at_least / max(1, *opened.size))
            if scale_at_least < 1.0 and pil_format == "JPEG":
                width, height = opened.size
                opened.draft(opened.mode, (math.ceil(width * scale_at_least), math.ceil(height * scale_at_least)))
            scale = opened.size[0] / full_width
            opened.load()  # truncated or damaged data fails here; see the handlers below
            upright = _apply_exif_orientation(opened)
            converted = convert(upright, scale)
    except ImageRejected:
        raise
    except UnidentifiedImageError as exc:
        raise ImageRejected(
            "corrupt", f"the content starts like a {description} but its header cannot be parsed"
        ) from exc
    except Image.DecompressionBombError as exc:
        # Only reachable if something re-enabled Pillow's guard concurrently; the verdict is the same.
        raise ImageRejected("too_large", str(exc)) from exc
    except MemoryError as exc:
        raise ImageRejected("too_large", f"not enough memory to decode this {description}") from exc
    except Exception as exc:
        # Pillow and its plugins raise a wide variety of errors on hostile data; none may escape.
        raise ImageRejected("corrupt", _decode_failure(description, exc)) from exc
    return converted


def to_rgb_image(image: Image.Image) -> Image.Image:
    """A decoded picture of any mode as an 8-bit RGB picture, by the rules of :func:`load_image` (a copy
    only when its mode needs converting)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("L", "P", "CMYK", "YCbCr") and "transparency" not in image.info:
        return image.convert("RGB")
    return Image.fromarray(_to_rgb_array(image))


def _pil_format_for(kind: str | None, data: bytes) -> str:
    """Map a sniffed kind to Pillow's format id, or reject content that is not a decodable picture."""
    if kind is None:
        raise ImageRejected(
            "not_an_image",
            f"the content matches no known picture format (it starts with bytes {data[:8].hex(' ')})",
        )
    if kind in _NON_IMAGE_KINDS:
        raise ImageRejected("not_an_image", f"the content is {_NON_IMAGE_KINDS[kind]}, not a picture")
    if kind in _UNSUPPORTED_IMAGE_KINDS:
        raise ImageRejected(
            "unsupported_format", f"the content is {_UNSUPPORTED_IMAGE_KINDS[kind]}, which is not supported"
        )
    return _DECODABLE[kind]


def _check_pixel_count(size: tuple[int, int], max_pixels: int) -> None:
    """Reject sizes that are empty or above ``max_pixels``."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageRejected("corrupt", f"the header declares an empty picture ({width}x{height})")
    if width * height > max_pixels:
        raise ImageRejected(
            "too_large",
            f"{width}x{height} is {width * height:,} pixels, over the limit of {max_pixels:,}",
        )


def _webp_canvas_size(data: bytes) -> tuple[int, int] | None:
    """Canvas size declared by a WebP header (lossy, lossless or extended), or ``None`` if unreadable."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        # 24-bit little-endian "size minus one" fields.
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None


def _ensure_heif_opener() -> bool:
    """Register pillow-heif with Pillow on first use; ``False`` when pillow-heif is not installed.

    Lazily, because importing pillow-heif loads libheif, which most runs (all-JPEG folders) never need.
    """
    global _heif_registered
    with _heif_lock:
        if not _heif_registered:
            try:
                from pillow_heif import register_heif_opener
            except ImportError:
                return False
            # No options: they are pillow-heif globals that other code may rely on.
            register_heif_opener()
            _heif_registered = True
    return True


def _decode_failure(description: str, exc: BaseException) -> str:
    """A sentence for a decoder error; a truncated file is called that, since it is the usual cause."""
    message = str(exc) or type(exc).__name__
    if "truncated" in message.lower() or isinstance(exc, EOFError):
        return f"the {description} is truncated (its data ends early): {message}"
    return f"the {description} data cannot be decoded: {message}"


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    """Turn the image upright according to its EXIF orientation tag.

    A damaged EXIF block must not cost us the photo, so EXIF errors leave the image as it is. Images
    without a rotation are returned as they are (``exif_transpose`` would copy them).
    """
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:
        return image
    if orientation not in (2, 3, 4, 5, 6, 7, 8):
        return image
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        return image


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert a decoded image of any mode to a writable (H, W, 3) ``uint8`` RGB array."""
    mode = image.mode
    if mode == "RGB":
        rgb = np.array(image)  # a copy: np.asarray would be read-only (it wraps Pillow's bytes)
    elif mode in ("I", "F") or mode.startswith("I;"):
        # Single-channel samples wider than 8 bits: Pillow's own convert("L") clips them at 255.
        gray = _gray_to_uint8(np.asarray(image))
        rgb = np.repeat(gray[:, :, np.newaxis], 3, axis=2)
    elif mode in _ALPHA_MODES or "transparency" in image.info:
        rgb = np.array(_composite_on_white(image))
    else:
        try:
            converted = image.convert("RGB")
        except ValueError as exc:
            raise ImageRejected("unsupported_format", f"colour mode {mode} cannot be converted to RGB") from exc
        rgb = np.array(converted)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageRejected("unsupported_format", f"colour mode {mode} decoded to an unexpected layout")
    return np.ascontiguousarray(rgb)


def _composite_on_white(image: Image.Image) -> Image.Image:
    """Flatten transparency onto a white background, as a viewer would show the picture."""
    if image.mode == "La":
        image = image.convert("LA")  # Pillow has no direct La -> RGBA conversion
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _gray_to_uint8(values: np.ndarray) -> np.ndarray:
    """Map single-channel samples wider than 8 bits to ``uint8`` by scaling, never by clipping."""
    if values.dtype.kind == "u" and values.dtype.itemsize == 2:
        return _scale_16_bit(values)
    if values.dtype.kind in "iu":
        if values.size == 0:
            return values.astype(np.uint8)
        low, high = int(values.min()), int(values.max())
        if low >= 0 and high <= 255:
            return values.astype(np.uint8)
        if low >= 0 and high <= 65535:
            return _scale_16_bit(values)
        return _stretch(values.astype(np.float64), float(low), float(high))
    samples = values.astype(np.float32, copy=True)
    finite = np.isfinite(samples)
    if not finite.all():
        samples[~finite] = 0.0  # NaN and infinities carry no usable brightness
    if samples.size == 0:
        return samples.astype(np.uint8)
    lowest, highest = float(samples.min()), float(samples.max())
    if lowest >= 0.0 and highest <= 1.0:
        return np.rint(samples * 255.0).astype(np.uint8)
    if lowest >= 0.0 and highest <= 255.0:
        return np.rint(samples).astype(np.uint8)
    return _stretch(samples, lowest, highest)


def _scale_16_bit(values: np.ndarray) -> np.ndarray:
    """Round 0..65535 to 0..255: v / 257, rounded (65535 = 255 * 257)."""
    wide = values.astype(np.uint32)
    wide += 128
    wide //= 257
    return wide.astype(np.uint8)


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linearly map ``low..high`` to ``0..255`` (a flat image maps to 0)."""
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
