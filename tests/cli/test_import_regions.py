"""`import-regions --format vinvl-tsv`: TSVs written with the exact public encodings (base64 of little-endian float32,
JSON columns, `.lineidx` byte offsets; both feature-row layouts; label rows with class/rect/conf; hw rows), imported
with the other side from images (tiny timm backbone) or from a second TSV, checked value by value against the
regions they were made from, refused with exit 3 naming file and row when corrupt, then fine-tuned on."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_BACKBONE, TINY_TEACHER_BACKBONE, assert_refused, invoke
from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.vinvl_tsv import FeatureTsv, TsvFile, decode_features

TEACHER_DIM = 2048


def _cli(args: list) -> object:
    """Run import-regions through the vlkd app (or, until it is registered there, an app holding only it)."""
    import typer

    from vlkd_cli.cli import app

    if not any(command.name == "import-regions" for command in app.registered_commands):
        from vlkd_cli.cli.import_regions import EPILOG, import_regions_cmd

        app = typer.Typer()
        app.command("import-regions", epilog=EPILOG)(import_regions_cmd)
        app.callback()(lambda: None)
    return CliRunner().invoke(app, [str(a) for a in args])


def _b64(values: np.ndarray, dtype: str = "<f4") -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype=dtype).tobytes()).decode("ascii")


def _write_tsv(path: Path, rows: list[list[str]], *, lineidx: bool = True) -> Path:
    """Rows joined by tabs, one per line; `.lineidx` = each row's byte offset (Oscar's generate_lineidx_file)."""
    data, offsets = b"", []
    for columns in rows:
        offsets.append(len(data))
        data += ("\t".join(columns) + "\n").encode("utf-8")
    path.write_bytes(data)
    if lineidx:
        path.with_suffix(".lineidx").write_text("".join(f"{offset}\n" for offset in offsets))
    return path


def _geometry(boxes: np.ndarray, size) -> np.ndarray:
    """(n, 6) x1/W, y1/H, x2/W, y2/H, w/W, h/H as float32 (VinVL's 2048 + 6 layout)."""
    height, width = size
    b = boxes.astype(np.float64)
    return np.stack([b[:, 0] / width, b[:, 1] / height, b[:, 2] / width, b[:, 3] / height,
                     (b[:, 2] - b[:, 0]) / width, (b[:, 3] - b[:, 1]) / height], axis=1).astype(np.float32)  # fmt: skip


@pytest.fixture(scope="module")
def source(demo_regions: Path, demo_data: Path) -> dict:
    """Per image of the demo regions: boxes, size, labels, scores, student features, and random teacher features."""
    regions = Regions(demo_regions)
    names = {c["id"]: c["name"] for c in json.loads((demo_data / "instances.json").read_text())["categories"]}
    rng = np.random.default_rng(0)
    images = []
    for n in range(regions.num_images):
        image = regions.image(n)
        count = len(image.boxes)
        images.append({
            "id": image.image_id, "size": image.size, "boxes": image.boxes.copy(), "scores": image.scores.copy(),
            "labels": image.labels.copy(), "names": [names[int(c)] for c in image.labels],
            "student": image.student_features.astype(np.float32),
            "teacher": (rng.random((count, TEACHER_DIM)) * 4).astype(np.float32),
        })  # fmt: skip
    return {"regions": regions, "images": images}


@pytest.fixture(scope="module")
def tsvs(source: dict, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vinvl")
    images = source["images"]

    def feature_blob(image):
        return _b64(np.concatenate([image["teacher"], _geometry(image["boxes"], image["size"])], axis=1))

    json_rows = [[str(im["id"]), json.dumps({"num_boxes": len(im["boxes"]), "features": feature_blob(im)})]
                 for im in images]  # fmt: skip
    column_rows = [[f"COCO_train2014_{im['id']:012d}.jpg", str(len(im["boxes"])), feature_blob(im)] for im in images]
    label_rows = [[f"{im['id']:012d}", json.dumps([
        {"class": name, "rect": [float(v) for v in box], "conf": float(score)}
        for name, box, score in zip(im["names"], im["boxes"], im["scores"])
    ])] for im in images]  # fmt: skip
    hw_rows = [[str(im["id"]), json.dumps([{"height": im["size"][0], "width": im["size"][1]}])] for im in images]
    student_rows = [[str(im["id"]), str(len(im["boxes"])), _b64(im["student"])] for im in images]
    return {
        "json": _write_tsv(root / "train.feature.tsv", json_rows),
        "columns": _write_tsv(root / "vqa.feature.tsv", column_rows, lineidx=False),
        "labels": _write_tsv(root / "train.label.tsv", label_rows),
        "hw": _write_tsv(root / "train.hw.tsv", hw_rows),
        "student": _write_tsv(root / "student.feature.tsv", student_rows),
    }


@pytest.fixture(scope="module")
def imported_with_images(tsvs, demo_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imported") / "regions.safetensors"
    result = _cli(["import-regions", "--format", "vinvl-tsv", tsvs["json"], "--labels", tsvs["labels"],
                   "--images", demo_data / "images", "--annotations", demo_data / "instances.json",
                   "--student-backbone", TINY_BACKBONE, "--image-size", 64, "--feature-dtype", "float32",
                   "--device", "cpu", "--out", out])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "boxes from labels" in result.stdout and "from the decoded image" in result.stdout
    return out


def test_labels_and_images_round_trip_exactly(imported_with_images, source, tsvs):
    regions, demo = Regions(imported_with_images), source["regions"]
    assert regions.image_ids.tolist() == [im["id"] for im in source["images"]]
    assert regions.image_sizes.tolist() == [list(im["size"]) for im in source["images"]]
    for n, expected in enumerate(source["images"]):
        image = regions.image(n)
        np.testing.assert_array_equal(image.boxes, expected["boxes"])
        np.testing.assert_array_equal(image.scores, expected["scores"])
        np.testing.assert_array_equal(image.labels, expected["labels"])  # names → the instances' category ids
        np.testing.assert_array_equal(image.teacher_features, expected["teacher"])  # the 2048 part, bit for bit
        # Student features pooled on the same boxes exactly as extract-regions pools them (stored there as float16).
        np.testing.assert_array_equal(image.student_features.astype(np.float16), demo.image(n).student_features)
    # Same ids, boxes and order as the regions the TSVs came from: the same alignment key.
    assert regions.boxes_sha256 == demo.boxes_sha256
    meta = regions.metadata
    assert meta["vlkd.teacher_backbone"] == "vinvl-tsv" and meta["vlkd.teacher_backbone_sha256"] == ""
    assert meta["vlkd.student_backbone"] == TINY_BACKBONE
    assert meta["vlkd.student_backbone_sha256"] == demo.metadata["vlkd.student_backbone_sha256"]
    assert meta["vlkd.import_format"] == "vinvl-tsv" and meta["vlkd.import_side"] == "teacher"
    records = {r["kind"]: r for r in json.loads(meta["vlkd.inputs"])}
    assert records["features"] == {
        "path": str(tsvs["json"]),
        "kind": "features",
        "format": "vinvl-tsv",
        "side": "teacher",
        "sha256": hashlib.sha256(tsvs["json"].read_bytes()).hexdigest(),
    }
    assert records["labels"]["sha256"] == hashlib.sha256(tsvs["labels"].read_bytes()).hexdigest()
    assert {"images", "annotations"} <= set(records)
    assert regions.categories == demo.categories  # the instances' categories (every demo name is one of them)


def test_geometry_boxes_second_tsv_and_columns_layout(tsvs, source, tmp_path):
    """Boxes from the 2048 + 6 geometry × hw sizes; student features from a second TSV; no .lineidx (scanned)."""
    out = tmp_path / "r.safetensors"
    result = _cli(["import-regions", tsvs["columns"], "--hw", tsvs["hw"], "--student-features", tsvs["student"],
                   "--feature-dtype", "float32", "--out", out])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "boxes from geometry" in result.stdout
    assert not tsvs["columns"].with_suffix(".lineidx").exists()  # the index is built in memory, inputs untouched
    regions = Regions(out)
    for n, expected in enumerate(source["images"]):
        image = regions.image(n)
        np.testing.assert_allclose(image.boxes, expected["boxes"], rtol=0, atol=1e-4)  # float32 ratio × size
        np.testing.assert_array_equal(image.teacher_features, expected["teacher"])
        np.testing.assert_array_equal(image.student_features, expected["student"])
        assert (image.labels == -1).all() and (image.scores == 1).all()
    assert regions.categories == [] and regions.metadata["vlkd.student_backbone"] == "tsv"


def _empty_row(files: dict[str, Path], row: int) -> None:
    """Make one image have no boxes in every file."""
    _rewrite_row(files["json"], row, lambda c: [c[0], json.dumps({"num_boxes": 0, "features": ""})])
    _rewrite_row(files["student"], row, lambda c: [c[0], "0", ""])
    _rewrite_row(files["labels"], row, lambda c: [c[0], "[]"])


@pytest.mark.parametrize("label_layout", ["list", "objects"])
def test_sizes_from_labels_empty_rows_and_a_karpathy_split(label_layout, tsvs, source, demo_data, tmp_path):
    """No hw, no images: sizes from rects / geometry, or from the label rows' image_h/image_w ("objects" layout,
    which also sizes an image without boxes); --annotations + --split restrict the images; categories = sorted names."""
    files = _copy(tsvs, tmp_path)
    empty = source["images"][2]
    args = ["import-regions", files["json"], "--labels", files["labels"], "--student-features", files["student"],
            "--annotations", demo_data / "karpathy.json", "--split", "train"]  # fmt: skip
    _empty_row(files, 2)
    if label_layout == "list":  # nothing sizes an image without boxes: refused
        assert_refused(_cli([*args, "--out", tmp_path / "r.safetensors"]), 3, "row 3 (image 3)", "no image size")
        files.update(_copy({k: tsvs[k] for k in ("json", "student", "labels")}, tmp_path))  # restore its boxes
    else:
        sizes = {im["id"]: im["size"] for im in source["images"]}
        rows = [line.split("\t") for line in files["labels"].read_text().splitlines()]
        rows = [[key, json.dumps({"objects": json.loads(value), "image_h": sizes[int(key)][0],
                                  "image_w": sizes[int(key)][1]})] for key, value in rows]  # fmt: skip
        _write_tsv(files["labels"], rows)
    karpathy = json.loads((demo_data / "karpathy.json").read_text())
    wanted = sorted(im["cocoid"] for im in karpathy["images"] if im["split"] in ("train", "restval"))
    assert empty["id"] in wanted and len(wanted) < len(source["images"])  # the demo data's split (seed 0)
    out = tmp_path / "r.safetensors"
    result = _cli([*args, "--out", out])
    assert result.exit_code == 0, result.output
    objects = label_layout == "objects"
    expected_source = "the label row's image_h/image_w" if objects else "the label rects / geometry ratio"
    assert f"{len(wanted)} from {expected_source}" in result.stdout
    assert f"{len(source['images']) - len(wanted)} rows of train.feature.tsv are not among" in result.stderr
    regions = Regions(out)
    assert regions.image_ids.tolist() == wanted and regions.teacher_dim == TEACHER_DIM
    names = sorted({name for im in source["images"] if im["id"] in wanted for name in im["names"]})
    assert regions.categories == [{"id": k + 1, "name": name} for k, name in enumerate(names)]
    by_id = {im["id"]: im for im in source["images"]}
    for n, image_id in enumerate(wanted):
        image, expected = regions.image(n), by_id[image_id]
        assert image.size == expected["size"]
        if image_id == empty["id"] and label_layout == "objects":
            assert len(image.boxes) == 0 and image.teacher_features.shape == (0, TEACHER_DIM)
            continue
        np.testing.assert_array_equal(image.boxes, expected["boxes"])
        assert [names[c - 1] for c in image.labels] == expected["names"]
        np.testing.assert_array_equal(image.teacher_features, expected["teacher"].astype(np.float16))


def test_student_side_with_teacher_pooled_from_images(tsvs, source, demo_data, tmp_path):
    """--side student: the TSV gives the student side; the teacher side is pooled like extract-regions' teacher."""
    out = tmp_path / "r.safetensors"
    result = _cli(["import-regions", tsvs["student"], "--side", "student", "--labels", tsvs["labels"],
                   "--images", demo_data / "images", "--teacher-backbone", TINY_TEACHER_BACKBONE, "--image-size", 64,
                   "--feature-dtype", "float32", "--device", "cpu", "--out", out])  # fmt: skip
    assert result.exit_code == 0, result.output
    regions, demo = Regions(out), source["regions"]
    assert regions.boxes_sha256 == demo.boxes_sha256
    for n, expected in enumerate(source["images"]):
        image = regions.image(n)
        np.testing.assert_array_equal(image.student_features, expected["student"])
        np.testing.assert_array_equal(image.teacher_features.astype(np.float16), demo.image(n).teacher_features)
    assert regions.metadata["vlkd.teacher_backbone_sha256"] == demo.metadata["vlkd.teacher_backbone_sha256"]


def test_finetune_on_imported_teacher_features(imported_with_images, demo_data, tmp_path):
    out = tmp_path / "teacher"
    result = invoke(["finetune", "--task", "caption", "--model", "tiny", "--regions", imported_with_images,
                     "--features", "teacher", "--annotations", demo_data / "karpathy.json", "--split", "train",
                     "--max-steps", 1, "--batch-size", 4, "--device", "cpu", "--out", out])  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["region_feature_dim"] == TEACHER_DIM and config["feature_backbone"] == "vinvl-tsv"
    assert config["regions_boxes_sha256"] == Regions(imported_with_images).boxes_sha256


# ------------------------------------------------------------------------------------------------------ refusals
def _rewrite_row(path: Path, row: int, edit) -> None:
    """Apply `edit(columns) -> columns` to one row (0-based) and rewrite the file and its .lineidx."""
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    rows[row] = edit(rows[row])
    _write_tsv(path, rows, lineidx=path.with_suffix(".lineidx").exists())


def _copy(tsvs: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    copies = {}
    for name, path in tsvs.items():
        copies[name] = tmp_path / path.name
        copies[name].write_bytes(path.read_bytes())
        if path.with_suffix(".lineidx").exists():
            copies[name].with_suffix(".lineidx").write_bytes(path.with_suffix(".lineidx").read_bytes())
    return copies


def _import_tsvs(files: dict[str, Path], out: Path):
    return _cli(["import-regions", files["json"], "--labels", files["labels"], "--hw", files["hw"],
                 "--student-features", files["student"], "--out", out])  # fmt: skip


def _edit_features(row_edit):
    def edit(columns):
        info = json.loads(columns[1])
        info["features"] = row_edit(info["features"], info["num_boxes"])
        return [columns[0], json.dumps(info)]

    return edit


def _nan_row(blob: str, num_boxes: int) -> str:
    values = np.frombuffer(base64.b64decode(blob), dtype="<f4").reshape(num_boxes, -1).copy()
    values[0, 5] = np.nan
    return _b64(values)


CORRUPTIONS = {
    "bad_base64": ("json", 2, _edit_features(lambda blob, n: blob[:40] + "!" + blob[41:]), "train.feature.tsv",
                   "row 3", "base64"),
    "wrong_size": ("json", 2, _edit_features(lambda blob, n: _b64(np.frombuffer(base64.b64decode(blob), "<f4")[:-1])),
                   "train.feature.tsv", "row 3", "do not split into"),
    "nan": ("json", 2, _edit_features(_nan_row), "train.feature.tsv", "row 3", "non-finite"),
    "label_key": ("labels", 3, lambda columns: ["999999", columns[1]], "train.label.tsv", "row 4", "keys do not match"),
    "label_count": ("labels", 1, lambda columns: [columns[0], json.dumps(json.loads(columns[1])[:-1])],
                    "train.label.tsv", "row 2", "boxes, but row 2"),
    "label_moved": ("labels", 1, lambda columns: [columns[0], json.dumps(
        [{**o, "rect": [o["rect"][0] + 3, o["rect"][1], o["rect"][2] + 3, o["rect"][3]]}
         for o in json.loads(columns[1])])],
        "train.feature.tsv", "row 2", "differ by"),
    "student_count": ("student", 4, lambda columns: [columns[0], "0", ""], "student.feature.tsv", "row 5",
                      "not on the same boxes"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupt_rows_are_refused_naming_file_and_row(name, tsvs, tmp_path):
    which, row, edit, file_name, row_text, reason = CORRUPTIONS[name]
    files = _copy(tsvs, tmp_path)
    _rewrite_row(files[which], row, edit)
    out = tmp_path / "out" / "regions.safetensors"
    out.parent.mkdir()
    out.write_bytes(b"previous")
    result = _import_tsvs(files, out)
    assert_refused(result, 3, file_name, row_text, reason)
    assert out.read_bytes() == b"previous"  # an existing output survives a failed import
    assert sorted(p.name for p in out.parent.iterdir()) == ["regions.safetensors"]  # no temp left


def test_stale_lineidx_is_refused(tsvs, tmp_path):
    files = _copy(tsvs, tmp_path)
    index = files["json"].with_suffix(".lineidx")
    offsets = index.read_text().splitlines()
    out = tmp_path / "regions.safetensors"
    for listed, needle in (
        (offsets[:2] + offsets[3:], "row 3 starts at byte"),  # row 3 missing from the index
        (offsets[:-1], f"indexes {len(offsets) - 1} rows, the TSV has {len(offsets)}"),  # the last row not indexed
        ([str(int(o) + (n == 4)) for n, o in enumerate(offsets)], "row 5 starts at byte"),  # an offset mid-line
        (offsets + [str(files["json"].stat().st_size + 10)], "indexes"),  # left from a longer file
    ):
        index.write_text("".join(f"{o}\n" for o in listed))
        assert_refused(_import_tsvs(files, out), 3, "train.feature.lineidx", needle, "stale index")
        assert not out.exists()
    index.unlink()  # no index at all: the offsets come from the file
    assert _import_tsvs(files, out).exit_code == 0


def test_usage_errors(tsvs, demo_data, tmp_path):
    out = tmp_path / "r.safetensors"
    cases = [
        ([tsvs["json"], "--labels", tsvs["labels"]], "give the student features"),
        ([tsvs["json"], "--labels", tsvs["labels"], "--student-backbone", TINY_BACKBONE], "give --images"),
        ([tsvs["json"], "--student-features", tsvs["student"]], "need image sizes"),
        ([tsvs["json"], "--hw", tsvs["hw"], "--student-features", tsvs["student"], "--teacher-features", tsvs["json"]],
         "--teacher-features is for the other side"),
        ([tsvs["json"], "--hw", tsvs["hw"], "--student-features", tsvs["student"], "--format", "butd"], "--format"),
    ]  # fmt: skip
    for args, needle in cases:
        assert_refused(_cli(["import-regions", *args, "--out", out]), 2, needle)
    assert not out.exists()


# ------------------------------------------------------------------------------------------------- the reader
def test_reader_matches_the_public_encodings(tsvs, source, tmp_path):
    scanned = TsvFile(tsvs["columns"], "features")  # no .lineidx: one pass, hashing on the way
    with open(tsvs["columns"], "rb") as handle:  # Oscar's generate_lineidx_file: readline / tell
        expected = []
        while handle.tell() != tsvs["columns"].stat().st_size:
            expected.append(handle.tell())
            handle.readline()
    assert scanned.offsets.tolist() == expected
    assert scanned.sha256 == hashlib.sha256(tsvs["columns"].read_bytes()).hexdigest()
    assert scanned.row_of(source["images"][3]["id"]) == 3 and scanned.row_of(10**9) is None
    scanned.close()
    for path, layout in ((tsvs["json"], "json"), (tsvs["columns"], "columns")):
        tsv = FeatureTsv(path)
        assert tsv.layout == layout
        features, geometry = tsv.read_row(1)
        np.testing.assert_array_equal(features, source["images"][1]["teacher"])
        np.testing.assert_array_equal(geometry, _geometry(source["images"][1]["boxes"], source["images"][1]["size"]))
        tsv.close()
    values = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    np.testing.assert_array_equal(decode_features(_b64(values), 3), values)
    np.testing.assert_array_equal(decode_features(_b64(values, "<f2"), 3, np.dtype("<f2")), values.astype(np.float16))
    assert decode_features("", 0).shape == (0, 0)
    with pytest.raises(ValueError, match="do not split"):
        decode_features(_b64(values), 5)


def test_float16_blobs_need_the_flag(source, tmp_path):
    image = source["images"][0]
    blob = np.concatenate([image["teacher"], _geometry(image["boxes"], image["size"])], axis=1)
    path = _write_tsv(tmp_path / "half.feature.tsv", [[str(image["id"]), str(len(blob)), _b64(blob, "<f2")]])
    tsv = FeatureTsv(path)
    with pytest.raises(Exception, match="try --tsv-dtype float16") as err:
        tsv.read_row(0)
    assert "row 1" in str(err.value) and "half.feature.tsv" in str(err.value)
    tsv.close()
    tsv = FeatureTsv(path, dtype="float16")
    features, _ = tsv.read_row(0)
    np.testing.assert_array_equal(features, image["teacher"].astype(np.float16).astype(np.float32))
    tsv.close()


