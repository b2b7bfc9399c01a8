"""Tests of `vlkd_cli.data.images`: decoding of every image mode, orientation, large files, errors, safe joins."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from vlkd_cli.data import images as images_module
from vlkd_cli.data.images import (
    IMAGE_EXTENSIONS,
    DecodedImage,
    image_id_from_filename,
    is_image_file,
    list_image_files,
    load_image,
    safe_join,
)
from vlkd_cli.errors import InputError

EXIF_ORIENTATION = 0x0112


def _save(picture: Image.Image, path: Path, **params: object) -> Path:
    """Save a picture and return its path."""
    picture.save(path, **params)
    return path


def _pixel(decoded: DecodedImage, x: int, y: int) -> tuple[int, int, int]:
    """Read one RGB pixel of a decoded image."""
    return tuple(np.asarray(decoded.image)[y, x].tolist())


def test_rgb_png_is_returned_unchanged(tmp_path: Path) -> None:
    values = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    decoded = load_image(_save(Image.fromarray(values), tmp_path / "a.png"))
    assert decoded.image.mode == "RGB"
    assert (decoded.height, decoded.width) == (5, 7)
    np.testing.assert_array_equal(np.asarray(decoded.image), values)


@pytest.mark.parametrize("mode, fill, expected", [("L", 77, (77, 77, 77)), ("1", 1, (255, 255, 255))])
def test_grayscale_and_bilevel_become_rgb(tmp_path: Path, mode: str, fill: int, expected: tuple[int, ...]) -> None:
    decoded = load_image(_save(Image.new(mode, (4, 3), fill), tmp_path / "g.png"))
    assert decoded.image.mode == "RGB"
    assert (decoded.height, decoded.width) == (3, 4)
    assert _pixel(decoded, 2, 1) == expected


def test_palette_with_transparency_is_composited_on_white(tmp_path: Path) -> None:
    picture = Image.new("P", (2, 1), 0)
    picture.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    picture.putpixel((1, 0), 1)
    decoded = load_image(_save(picture, tmp_path / "p.png", transparency=0))
    assert _pixel(decoded, 0, 0) == (255, 255, 255)  # index 0 (black) is transparent
    assert _pixel(decoded, 1, 0) == (255, 0, 0)


def test_palette_without_transparency_keeps_its_colours(tmp_path: Path) -> None:
    picture = Image.new("P", (2, 1), 0)
    picture.putpalette([0, 0, 0, 10, 20, 30] + [0, 0, 0] * 254)
    picture.putpixel((1, 0), 1)
    decoded = load_image(_save(picture, tmp_path / "p.gif"))
    assert (_pixel(decoded, 0, 0), _pixel(decoded, 1, 0)) == ((0, 0, 0), (10, 20, 30))


def test_rgba_transparent_pixel_becomes_white(tmp_path: Path) -> None:
    values = np.array([[[0, 0, 0, 0], [255, 0, 0, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    decoded = load_image(_save(Image.fromarray(values, "RGBA"), tmp_path / "rgba.png"))
    assert decoded.image.mode == "RGB"
    assert _pixel(decoded, 0, 0) == (255, 255, 255)
    assert _pixel(decoded, 1, 0) == (255, 0, 0)
    assert all(abs(c - 127) <= 1 for c in _pixel(decoded, 2, 0))  # half-transparent black over white


def test_la_and_pa_are_composited_on_white(tmp_path: Path) -> None:
    la = load_image(_save(Image.new("LA", (2, 2), (0, 0)), tmp_path / "la.png"))
    pa_picture = Image.new("PA", (2, 2), (0, 0))
    pa = load_image(_save(pa_picture, tmp_path / "pa.tif"))
    assert _pixel(la, 0, 0) == (255, 255, 255)
    assert _pixel(pa, 1, 1) == (255, 255, 255)


def test_gray_and_rgb_with_transparent_colour_become_white(tmp_path: Path) -> None:
    gray = load_image(_save(Image.new("L", (2, 2), 9), tmp_path / "l.png", transparency=9))
    rgb = load_image(_save(Image.new("RGB", (2, 2), (1, 2, 3)), tmp_path / "rgb.png", transparency=(1, 2, 3)))
    assert _pixel(gray, 0, 0) == (255, 255, 255)
    assert _pixel(rgb, 0, 0) == (255, 255, 255)


@pytest.mark.parametrize("cmyk, rgb", [((0, 0, 0, 0), (255, 255, 255)), ((0, 255, 255, 0), (255, 0, 0))])
def test_cmyk_becomes_rgb(tmp_path: Path, cmyk: tuple[int, ...], rgb: tuple[int, int, int]) -> None:
    decoded = load_image(_save(Image.new("CMYK", (3, 2), cmyk), tmp_path / "c.tif"))
    assert decoded.image.mode == "RGB"
    assert _pixel(decoded, 0, 0) == rgb


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    decoded = load_image(_save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "c.jpg", quality=95))
    red, green, blue = _pixel(decoded, 8, 8)
    assert red > 240 and green < 15 and blue < 15


def test_ycbcr_tiff_becomes_rgb(tmp_path: Path) -> None:
    decoded = load_image(_save(Image.new("YCbCr", (2, 2), (128, 128, 128)), tmp_path / "y.tif"))
    assert all(abs(c - 128) <= 1 for c in _pixel(decoded, 0, 0))


def test_lab_is_converted_colorimetrically(tmp_path: Path) -> None:
    white = load_image(_save(Image.new("LAB", (2, 2), (255, 128, 128)), tmp_path / "white.tif"))
    black = load_image(_save(Image.new("LAB", (2, 2), (0, 128, 128)), tmp_path / "black.tif"))
    assert all(c >= 250 for c in _pixel(white, 0, 0))
    assert all(c <= 5 for c in _pixel(black, 0, 0))


def test_hsv_picture_is_converted() -> None:
    converted = images_module._to_rgb8(Image.new("HSV", (1, 1), (0, 255, 255)), Path("x"))
    assert converted.mode == "RGB" and converted.getpixel((0, 0)) == (255, 0, 0)


def test_16_bit_png_is_scaled_by_its_range(tmp_path: Path) -> None:
    values = np.array([[0, 255, 32896, 65535]], dtype=np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I;16")
    decoded = load_image(path)
    assert [_pixel(decoded, x, 0)[0] for x in range(4)] == [0, 0, 128, 255]


def test_16_bit_big_endian_tiff_is_scaled(tmp_path: Path) -> None:
    decoded = load_image(_save(Image.new("I;16B", (2, 2), 65535), tmp_path / "be.tif"))
    assert _pixel(decoded, 0, 0) == (255, 255, 255)


@pytest.mark.parametrize(
    "values, expected",
    [([0, 100, 255], [0, 100, 255]), ([0, 32896, 65535], [0, 128, 255]), ([-5, 70000, 256], [0, 255, 1])],
)
def test_32_bit_int_mode_rule(tmp_path: Path, values: list[int], expected: list[int]) -> None:
    picture = Image.fromarray(np.array([values], dtype=np.int32), mode="I")
    decoded = load_image(_save(picture, tmp_path / "i.tif"))
    assert [_pixel(decoded, x, 0)[0] for x in range(3)] == expected


@pytest.mark.parametrize(
    "values, expected",
    [([0.0, 0.5, 1.0], [0, 128, 255]), ([0.0, 100.4, 300.0], [0, 100, 255]), ([float("nan"), -1.0, 1.0], [0, 0, 255])],
)
def test_float_mode_rule(tmp_path: Path, values: list[float], expected: list[int]) -> None:
    picture = Image.fromarray(np.array([values], dtype=np.float32), mode="F")
    decoded = load_image(_save(picture, tmp_path / "f.tif"))
    assert [_pixel(decoded, x, 0)[0] for x in range(3)] == expected


def _oriented_jpeg(path: Path, orientation: int) -> Path:
    """A 40x20 (w x h) JPEG, red left half and blue right half, with an EXIF orientation tag."""
    picture = Image.new("RGB", (40, 20), (0, 0, 255))
    picture.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return _save(picture, path, exif=exif.tobytes(), quality=95)


def test_exif_orientation_6_swaps_size_and_rotates_content(tmp_path: Path) -> None:
    decoded = load_image(_oriented_jpeg(tmp_path / "o.jpg", 6))
    assert (decoded.height, decoded.width) == (40, 20)
    assert decoded.image.size == (20, 40)
    # Orientation 6 is displayed after a 90 degree clockwise turn: the stored left half ends on top.
    top, bottom = _pixel(decoded, 10, 5), _pixel(decoded, 10, 35)
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_exif_orientation_3_keeps_size_and_turns_content(tmp_path: Path) -> None:
    decoded = load_image(_oriented_jpeg(tmp_path / "o.jpg", 3))
    assert (decoded.height, decoded.width) == (20, 40)
    assert _pixel(decoded, 35, 10)[0] > 200  # the red stored-left half is now on the right


def test_exif_orientation_with_max_side_reports_full_rotated_size(tmp_path: Path) -> None:
    picture = Image.new("RGB", (400, 200), (0, 128, 0))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 8
    decoded = load_image(_save(picture, tmp_path / "o.jpg", exif=exif.tobytes()), max_side=50)
    assert (decoded.height, decoded.width) == (400, 200)
    assert decoded.image.size == (25, 50)


def test_large_jpeg_with_max_side_decodes_fast_and_reports_full_size(tmp_path: Path) -> None:
    # 108 Mpx: above Pillow's default MAX_IMAGE_PIXELS (89 Mpx), where a default open warns.
    path = _save(Image.new("L", (12000, 9000), 90), tmp_path / "huge.jpg", quality=20)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        decoded = load_image(path, max_side=256)
    elapsed = time.perf_counter() - start
    assert (decoded.height, decoded.width) == (9000, 12000)
    assert decoded.image.size == (256, 192) and decoded.image.mode == "RGB"
    assert abs(_pixel(decoded, 100, 100)[0] - 90) <= 2
    assert elapsed < 0.5  # a full decode without the JPEG draft takes over 1.5 s here


def test_decompression_bomb_limit_is_relaxed_only_while_opening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a limit of 1000 px, Pillow itself refuses a 100x100 image (more than twice the limit).
    path = _save(Image.new("RGB", (100, 100), (1, 2, 3)), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    decoded = load_image(path)
    assert (decoded.height, decoded.width) == (100, 100)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_images_beyond_the_vlkd_limit_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(Image.new("RGB", (100, 100)), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    monkeypatch.setattr(images_module, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(InputError, match="cannot decode image: .*decompression bomb") as caught:
        load_image(path)
    assert caught.value.exit_code == 3


def test_max_side_resizes_non_jpeg_and_never_enlarges(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (300, 100), (5, 6, 7)), tmp_path / "wide.png")
    small = load_image(path, max_side=60)
    same = load_image(path, max_side=1000)
    assert small.image.size == (60, 20) and (small.height, small.width) == (100, 300)
    assert same.image.size == (300, 100)


def test_max_side_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_side"):
        load_image(_save(Image.new("RGB", (2, 2)), tmp_path / "a.png"), max_side=0)


def _encoded(tmp_path: Path, fmt: str) -> bytes:
    """Encode a noisy 64x64 picture, so the compressed stream is long enough to cut."""
    values = np.random.default_rng(1).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    path = _save(Image.fromarray(values), tmp_path / f"full.{fmt.lower()}", format=fmt)
    return path.read_bytes()


@pytest.mark.parametrize("fmt, suffix", [("JPEG", "jpg"), ("PNG", "png")])
def test_truncated_file_is_an_input_error(tmp_path: Path, fmt: str, suffix: str) -> None:
    data = _encoded(tmp_path, fmt)
    path = tmp_path / f"cut.{suffix}"
    path.write_bytes(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(InputError) as caught:
        load_image(path)
    assert caught.value.exit_code == 3
    assert str(caught.value).startswith(f"{path}: cannot decode image:")
    assert "truncated" in str(caught.value)


@pytest.mark.parametrize("content, reason", [(b"hello, not an image\n", "not a recognised"), (b"", "empty file")])
def test_non_image_and_empty_files_are_input_errors(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "fake.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError, match=reason) as caught:
        load_image(path)
    assert caught.value.exit_code == 3
    assert str(caught.value).startswith(f"{path}: cannot decode image:")
    assert "\n" not in str(caught.value)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load_image(tmp_path / "gone.jpg")
    assert caught.value.exit_code == 3
    assert str(caught.value) == f"{tmp_path / 'gone.jpg'}: image file is missing"


def test_directory_is_an_input_error(tmp_path: Path) -> None:
    folder = tmp_path / "dir.jpg"
    folder.mkdir()
    with pytest.raises(InputError, match="cannot decode image") as caught:
        load_image(folder)
    assert caught.value.exit_code == 3


def test_pixel_limit_is_restored_after_a_failure(tmp_path: Path) -> None:
    before = Image.MAX_IMAGE_PIXELS
    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(InputError):
        load_image(path)
    assert Image.MAX_IMAGE_PIXELS == before


def test_safe_join_accepts_names_inside_the_root(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "val2014/a.jpg") == tmp_path / "val2014" / "a.jpg"
    assert safe_join(tmp_path, "x/../b.jpg") == tmp_path / "b.jpg"
    assert safe_join(tmp_path, "./c.jpg") == tmp_path / "c.jpg"


@pytest.mark.parametrize("name", ["../secret.jpg", "a/../../secret.jpg", "/etc/passwd", "..", ""])
def test_safe_join_refuses_escapes(tmp_path: Path, name: str) -> None:
    root = tmp_path / "images"
    root.mkdir()
    with pytest.raises(InputError) as caught:
        safe_join(root, name)
    assert caught.value.exit_code == 3
    assert str(caught.value).startswith(f"{root}: ")


def test_safe_join_trusts_the_users_symlinks_but_not_dotdot(tmp_path: Path) -> None:
    """`images/val2014 -> /shared/coco/val2014` is a common layout; only the annotation's names are suspect."""
    root = tmp_path / "images"
    root.mkdir()
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "a.jpg").write_bytes(b"x")
    (root / "val2014").symlink_to(shared)
    assert safe_join(root, "val2014/a.jpg") == root / "val2014" / "a.jpg"
    with pytest.raises(InputError, match="escapes the images root"):
        safe_join(root, "val2014/../../shared/a.jpg")


def test_image_extensions_and_listing(tmp_path: Path) -> None:
    assert {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"} == set(IMAGE_EXTENSIONS)
    assert is_image_file(Path("A.JPG")) and is_image_file(Path("b.TiFf"))
    assert not is_image_file(Path("notes.txt")) and not is_image_file(Path("._a.jpg"))
    for relative in ["b/2.PNG", "a/1.jpg", "c.txt", ".hidden/3.jpg", "0.webp"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in list_image_files(tmp_path)] == ["0.webp", "a/1.jpg", "b/2.PNG"]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("COCO_val2014_000000391895.jpg", 391895),
        ("123.jpg", 123),
        ("000000000042.png", 42),
        ("dir/img_7.JPEG", 7),
        ("abc.jpg", None),
        ("12abc.jpg", None),
        ("img7a.jpg", None),
    ],
)
def test_image_id_from_filename(name: str, expected: int | None) -> None:
    assert image_id_from_filename(name) == expected
