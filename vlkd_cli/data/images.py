"""Decode image files into 8-bit RGB, with EXIF orientation applied, and join annotation file names safely.

Boxes everywhere in vlkd are pixels of the image *as decoded here*: EXIF orientation applied, full resolution.
`load_image` may return a smaller picture when `max_side` is asked for, but it always reports the full size.

Mode rules (every mode Pillow can open a file as ends up as 8-bit RGB):

- `RGB` is kept; `1`, `L`, `P`, `CMYK`, `YCbCr`, `HSV`, `RGBX` use Pillow's conversion; `LAB` goes through a
  LittleCMS Lab → sRGB transform (Pillow's plain conversion copies channels).
- Anything with transparency (`RGBA`, `LA`, `PA`, `RGBa`, a `P`/`L`/`RGB` image with a `transparency` entry) is
  composited on white.
- 16-bit modes (`I;16`, `I;16L`, `I;16B`, `I;16N`) are scaled by their dtype range: `v >> 8` (65535 → 255).
- `I` (32-bit int, what some decoders give for 16-bit grayscale) is clipped to 0..65535; if its maximum is above
  255 it is treated as 16-bit data (`>> 8`), otherwise as 8-bit data already.
- `F` (32-bit float) is read as 0..1 when its finite maximum is ≤ 1 (scaled by 255), else as 0..255 (clipped);
  NaN becomes 0.

Truncated files are errors: this module never sets `ImageFile.LOAD_TRUNCATED_IMAGES`.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps

from vlkd_cli.errors import InputError

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
"""Lower-case suffixes of the files treated as images (compare with `path.suffix.lower()`)."""

MAX_IMAGE_PIXELS: int = 1_000_000_000
"""Pixel count up to which Pillow's decompression-bomb guard is relaxed while vlkd opens an image.

Pillow warns above its limit and refuses above twice its limit (about 179 Mpx by default), which rejects legit
panoramas and scans. vlkd raises the limit to this value only for the duration of its own `Image.open` calls.
"""

_TRAILING_NUMBER = re.compile(r"([0-9]+)$")
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa"})
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    Image.DecompressionBombError,
)
_PIXEL_LIMIT_LOCK = threading.Lock()


@dataclass(frozen=True)
class DecodedImage:
    """An image decoded to 8-bit RGB.

    Attributes:
        image: The RGB picture; smaller than `height` x `width` when `load_image` was given `max_side`.
        height: Height in pixels of the full decoded image (after EXIF orientation); boxes use these pixels.
        width: Width in pixels of the full decoded image (after EXIF orientation).
    """

    image: Image.Image
    height: int
    width: int


def is_image_file(path: Path) -> bool:
    """Tell whether a path has one of the `IMAGE_EXTENSIONS` (case-insensitive) and is not hidden.

    Args:
        path: Any path; only its name is looked at.

    Returns:
        True for names such as `a.JPG`, False for `notes.txt` or `._a.jpg` (macOS resource forks).
    """
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def image_id_from_filename(name: str) -> int | None:
    """Read the image id from a file name: the number at the end of its stem (the COCO convention).

    Args:
        name: A file name or path, e.g. `COCO_val2014_000000391895.jpg`.

    Returns:
        The number (391895 here; `123.jpg` gives 123), or None when the stem does not end with digits.
    """
    match = _TRAILING_NUMBER.search(Path(name).stem)
    return int(match.group(1)) if match else None


def list_image_files(images_dir: Path) -> list[Path]:
    """List every image file under a directory, recursively, in sorted order.

    Hidden files and directories (names starting with `.`) are skipped; symlinked directories are not entered.

    Args:
        images_dir: The directory to scan.

    Returns:
        The paths, as `images_dir / relative`, sorted by their relative path.
    """
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(images_dir):
        dirnames[:] = [name for name in dirnames if not name.startswith(".")]
        found.extend(Path(dirpath) / name for name in filenames if is_image_file(Path(name)))
    return sorted(found, key=lambda p: p.relative_to(images_dir).as_posix())


def safe_join(root: Path, relative: str) -> Path:
    """Join a file name taken from an annotation file under the images root, refusing escapes.

    Args:
        root: The images root (`--images`).
        relative: The file name from the annotation, e.g. `val2014/COCO_val2014_000000391895.jpg`.

    Returns:
        `root / relative`.

    Raises:
        InputError: The name is empty, absolute, or climbs out with `..`. The check is lexical: symlinks that
            the user placed under the root (e.g. `images/val2014 -> /shared/coco/val2014`) are trusted, since
            the threat is a file name in an annotation file, not the user's own file system.
    """
    if not isinstance(relative, str) or not relative.strip():
        raise InputError(f"empty or non-string file name {relative!r}", path=root)
    if "\x00" in relative:
        raise InputError(f"file name contains a NUL byte: {relative!r}", path=root)
    normalised = os.path.normpath(relative.replace("\\", "/"))
    pure = Path(normalised)
    if pure.is_absolute() or pure.drive or normalised.startswith("/") or pure.parts[:1] == ("..",):
        raise InputError(f"file name escapes the images root: {relative!r}", path=root)
    return root / normalised


def load_image(path: Path, *, max_side: int | None = None) -> DecodedImage:
    """Decode an image file to 8-bit RGB with EXIF orientation applied.

    Args:
        path: The image file.
        max_side: When given, the returned picture is shrunk (never enlarged) so its longest side is at most this
            many pixels; JPEGs are then decoded at a reduced DCT scale, so a 10k px photo decodes quickly.

    Returns:
        The picture and the full decoded size (after orientation), whatever `max_side` is.

    Raises:
        InputError: The file is missing (an annotation refers to it), empty, truncated, not an image, or in a mode
            that cannot be converted.
        ValueError: `max_side` is not positive.
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    path = Path(path)
    picture, height, width = _decode(path, max_side)
    picture = _to_rgb8(picture, path)
    if max_side is not None and max(height, width) > max_side:
        picture = picture.resize(_fit_size(width, height, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return DecodedImage(image=picture, height=height, width=width)


def _decode(path: Path, max_side: int | None) -> tuple[Image.Image, int, int]:
    """Open, draft, load and orient an image; map every decoder failure to `InputError`.

    Args:
        path: The image file.
        max_side: The requested longest side, used to pick a JPEG draft scale.

    Returns:
        The oriented (possibly draft-reduced) picture in its file mode, and the full oriented height and width.
    """
    try:
        if path.stat().st_size == 0:
            raise InputError("cannot decode image: empty file", path=path)
        with _relaxed_pixel_limit():
            opened = Image.open(path)
        with opened:
            full_width, full_height = opened.size
            if max_side is not None and opened.format in ("JPEG", "MPO") and max(opened.size) > max_side:
                opened.draft("RGB", _fit_size(full_width, full_height, max_side))
            opened.load()
            loaded_size = opened.size
            oriented = ImageOps.exif_transpose(opened)
    except FileNotFoundError as exc:
        raise InputError("image file is missing", path=path) from exc
    except Image.UnidentifiedImageError as exc:
        raise InputError("cannot decode image: not a recognised image format", path=path) from exc
    except _DECODE_ERRORS as exc:
        raise InputError(f"cannot decode image: {_one_line(exc)}", path=path) from exc
    if oriented.size != loaded_size:
        full_width, full_height = full_height, full_width
    return oriented, full_height, full_width


@contextmanager
def _relaxed_pixel_limit() -> Iterator[None]:
    """Raise Pillow's decompression-bomb limit to `MAX_IMAGE_PIXELS` for the body, then restore it.

    Yields:
        Nothing; the limit is raised while the body runs (under a lock, so threads do not interleave).
    """
    with _PIXEL_LIMIT_LOCK:
        previous = Image.MAX_IMAGE_PIXELS
        if previous is not None and previous < MAX_IMAGE_PIXELS:
            Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def _to_rgb8(picture: Image.Image, path: Path) -> Image.Image:
    """Convert a loaded picture of any Pillow mode to 8-bit RGB (rules in the module docstring).

    Args:
        picture: The decoded picture.
        path: The file it came from, for error messages.

    Returns:
        An RGB picture.

    Raises:
        InputError: The mode cannot be converted.
    """
    mode = picture.mode
    try:
        if mode == "RGB" and "transparency" not in picture.info:
            return picture
        if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
            return Image.fromarray(_high_bit_to_uint8(picture), mode="L").convert("RGB")
        if mode == "LAB":
            return _lab_to_rgb(picture)
        if mode in _ALPHA_MODES or "transparency" in picture.info:
            return _composite_on_white(picture)
        return picture.convert("RGB")
    except (ValueError, OSError, ImageCms.PyCMSError) as exc:
        raise InputError(f"cannot convert image mode {mode} to RGB: {_one_line(exc)}", path=path) from exc


def _high_bit_to_uint8(picture: Image.Image) -> np.ndarray:
    """Scale a single-channel 16-bit, 32-bit int or float picture to uint8.

    Args:
        picture: A picture in mode `I;16*`, `I` or `F`.

    Returns:
        A (H, W) uint8 array.
    """
    values = np.asarray(picture)
    if picture.mode in _SIXTEEN_BIT_MODES:
        return (values.astype(np.uint16) >> 8).astype(np.uint8)
    if picture.mode == "I":
        clipped = np.clip(values, 0, 65535).astype(np.uint32)
        if clipped.size and int(clipped.max()) > 255:
            clipped >>= 8
        return clipped.astype(np.uint8)
    floats = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    finite_max = float(floats.max()) if floats.size else 0.0
    if finite_max <= 1.0:
        floats = floats * 255.0
    return np.rint(np.clip(floats, 0.0, 255.0)).astype(np.uint8)


def _lab_to_rgb(picture: Image.Image) -> Image.Image:
    """Convert a Pillow `LAB` picture (a and b stored with a +128 offset) to sRGB with LittleCMS.

    Args:
        picture: A `LAB` picture.

    Returns:
        An RGB picture.
    """
    transform = ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
    return ImageCms.applyTransform(picture, transform)


def _composite_on_white(picture: Image.Image) -> Image.Image:
    """Composite a picture with an alpha channel or a transparency entry on an opaque white background.

    Args:
        picture: A picture with transparency.

    Returns:
        An RGB picture where fully transparent pixels are (255, 255, 255).
    """
    rgba = picture.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Compute the (width, height) fitting a (width, height) image into `max_side`, keeping its aspect ratio.

    Args:
        width: Full width.
        height: Full height.
        max_side: The longest side allowed.

    Returns:
        The target size as (width, height), each at least 1 and no larger than the input.
    """
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, min(max_side, round(width * scale))), max(1, min(max_side, round(height * scale)))


def _one_line(exc: BaseException) -> str:
    """Render an exception as one short line.

    Args:
        exc: Any exception.

    Returns:
        Its message on one line, or its type name when the message is empty.
    """
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
