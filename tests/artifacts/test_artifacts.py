"""Artifact layer: header validation, metadata, kind/version checks, atomic writes, regions and shards."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vlkd_cli.artifacts.header import read_header
from vlkd_cli.artifacts.io import build_metadata, input_record, load_tensors, open_artifact, save_artifact
from vlkd_cli.artifacts.regions import Regions, RegionsWriter, image_box_digest
from vlkd_cli.artifacts.schema import SCHEMA_VERSIONS
from vlkd_cli.artifacts.shards import parse_shard, resolve_shards, shard_path, shard_range
from vlkd_cli.errors import InputError, UsageError


def _meta(kind: str = "model", **extra: str) -> dict[str, str]:
    return build_metadata(kind, command="test", config={"a": 1}, extra=extra)


def test_save_and_load_roundtrip_is_standard_safetensors(tmp_path):
    path = tmp_path / "m.safetensors"
    tensors = {"w": torch.arange(6, dtype=torch.float32).view(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    save_artifact(path, tensors, _meta())
    with safe_open(str(path), framework="pt") as f:  # the reference reader accepts our writer's output
        assert torch.equal(f.get_tensor("w"), tensors["w"])
        assert f.metadata()["vlkd.kind"] == "model"
    loaded, header = load_tensors(path, "model")
    assert torch.equal(loaded["b"], tensors["b"])
    for key in ("format", "vlkd.kind", "vlkd.schema_version", "vlkd.version", "vlkd.command", "vlkd.created",
                "vlkd.config", "vlkd.inputs", "vlkd.content_sha256"):  # fmt: skip
        assert key in header.metadata, key
    assert json.loads(header.metadata["vlkd.config"]) == {"a": 1}


def test_content_hash_depends_on_values_not_on_time(tmp_path):
    a, b, c = (tmp_path / f"{n}.safetensors" for n in "abc")
    save_artifact(a, {"w": torch.ones(3)}, _meta())
    save_artifact(b, {"w": torch.ones(3)}, _meta())
    save_artifact(c, {"w": torch.zeros(3)}, _meta())
    assert input_record(a)["sha256"] == input_record(b)["sha256"] != input_record(c)["sha256"]


def test_wrong_kind_and_newer_schema_are_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_artifact(path, {"w": torch.ones(1)}, _meta())
    with pytest.raises(InputError, match="expected a vlkd 'detector' artifact, found kind 'model'") as err:
        open_artifact(path, "detector")
    assert err.value.exit_code == 3
    newer = _meta()
    newer["vlkd.schema_version"] = str(SCHEMA_VERSIONS["model"] + 1)
    save_artifact(path, {"w": torch.ones(1)}, newer)
    with pytest.raises(InputError, match="newer than this vlkd reads"):
        open_artifact(path, "model")


def test_foreign_safetensors_has_no_kind(tmp_path):
    path = tmp_path / "x.safetensors"
    save_file({"w": torch.ones(2)}, str(path))
    with pytest.raises(InputError, match="found no vlkd kind"):
        open_artifact(path, "model")


def test_non_finite_values_are_refused_on_write_and_read(tmp_path):
    path = tmp_path / "m.safetensors"
    with pytest.raises(InputError, match="non-finite"):
        save_artifact(path, {"w": torch.tensor([1.0, float("nan")])}, _meta())
    assert not path.exists()
    save_file({"w": torch.tensor([float("inf")])}, str(path), metadata=_meta())
    with pytest.raises(InputError, match="non-finite"):
        load_tensors(path, "model")


def _valid_file(tmp_path):
    path = tmp_path / "m.safetensors"
    save_artifact(path, {"w": torch.ones(4, 4), "v": torch.zeros(3)}, _meta())
    return path


def test_truncated_file_is_input_error(tmp_path):
    path = _valid_file(tmp_path)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(InputError, match="truncated"):
        read_header(path)


def test_header_lying_about_offsets(tmp_path):
    path = _valid_file(tmp_path)
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    header["w"]["data_offsets"][1] += 4  # claims more bytes than float32 x (4, 4)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])
    with pytest.raises(InputError, match="claims 68 bytes"):
        read_header(path)


@pytest.mark.parametrize("length", [2**40, 200_000_000])
def test_huge_header_length(tmp_path, length):
    path = _valid_file(tmp_path)
    path.write_bytes(struct.pack("<Q", length) + path.read_bytes()[8:])
    with pytest.raises(InputError, match="header length"):
        read_header(path)


def test_garbage_and_tiny_files(tmp_path):
    path = tmp_path / "g.safetensors"
    path.write_bytes(b"abc")
    with pytest.raises(InputError, match="shorter than"):
        read_header(path)
    path.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{}")
    with pytest.raises(InputError, match="not valid JSON"):
        read_header(path)


def test_failed_overwrite_keeps_old_file(tmp_path):
    path = _valid_file(tmp_path)
    before = path.read_bytes()
    with pytest.raises(InputError):
        save_artifact(path, {"w": torch.tensor([float("nan")])}, _meta())
    with pytest.raises(TypeError):
        save_artifact(path, {"w": torch.ones(2, dtype=torch.bfloat16)}, _meta())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_disk_full_during_write_keeps_old_file(tmp_path, monkeypatch):
    path = _valid_file(tmp_path)
    before = path.read_bytes()
    import vlkd_cli.artifacts.writer as writer

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer.shutil, "copyfileobj", no_space)
    builder = writer.TensorBuilder(tmp_path / "rows.bin", "w", np.float32, (2,))
    builder.append(np.ones((3, 2)))
    with pytest.raises(OSError, match="No space"):
        writer.write_safetensors(path, [builder.finish()], _meta())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, "rows.bin"])


# ----------------------------------------------------------------------------------------------- regions


def _write_regions(path, images, *, dims=(3, 5), meta_extra=None):
    writer = RegionsWriter(path, student_dim=dims[0], teacher_dim=dims[1], feature_dtype="float32")
    for image_id, n in images:
        boxes = np.array([[i, i, i + 10, i + 8] for i in range(n)], dtype=np.float32)
        writer.add(image_id, (40, 50), boxes, np.linspace(1, 0.5, n), np.arange(n),
                   np.full((n, dims[0]), image_id, np.float32), np.full((n, dims[1]), -image_id, np.float32))  # fmt: skip
    extra = {"vlkd.student_backbone": "s", "vlkd.student_backbone_sha256": "x", "vlkd.teacher_backbone": "t",
             "vlkd.teacher_backbone_sha256": "y", "vlkd.categories": "[]", "vlkd.proposals": "p", **(meta_extra or {})}  # fmt: skip
    return writer.finish(build_metadata("regions", command="test", config={}, extra=extra))


def test_regions_roundtrip(tmp_path):
    path = tmp_path / "regions.safetensors"
    key = _write_regions(path, [(7, 3), (9, 0), (11, 2)])
    regions = Regions(path)
    assert regions.num_images == 3 and regions.num_regions == 5
    assert regions.boxes_sha256 == key == read_header(path).metadata["vlkd.boxes_sha256"]
    empty = regions.image(regions.index_of(9))
    assert empty.boxes.shape == (0, 4) and empty.student_features.shape == (0, 3)
    last = regions.image(2)
    assert last.image_id == 11 and last.size == (40, 50)
    assert np.array_equal(last.teacher_features, np.full((2, 5), -11, np.float32))
    with pytest.raises(InputError, match="no regions"):
        regions.index_of(8)


def test_digest_covers_id_count_and_boxes():
    boxes = np.ones((2, 4), np.float32)
    assert image_box_digest(1, boxes) != image_box_digest(2, boxes)
    assert image_box_digest(1, boxes) != image_box_digest(1, boxes[:1])
    assert image_box_digest(1, boxes) != image_box_digest(1, boxes + 1)


def test_shard_set_reads_as_one_with_same_key(tmp_path):
    images = [(i, i % 3) for i in range(1, 11)]
    single = _write_regions(tmp_path / "one.safetensors", images)
    base = tmp_path / "set.safetensors"
    for k in range(3):
        _write_regions(shard_path(base, k, 3), [images[i] for i in shard_range(len(images), k, 3)])
    whole, sharded = Regions(tmp_path / "one.safetensors"), Regions(base)
    assert sharded.boxes_sha256 == single == whole.boxes_sha256
    assert np.array_equal(sharded.image_ids, whole.image_ids)
    for n in range(whole.num_images):
        a, b = whole.image(n), sharded.image(n)
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.student_features, b.student_features)


def test_incomplete_or_missing_shard_set(tmp_path):
    base = tmp_path / "set.safetensors"
    _write_regions(shard_path(base, 0, 3), [(1, 1)])
    _write_regions(shard_path(base, 2, 3), [(3, 1)])
    with pytest.raises(InputError, match="missing set-00001-of-00003.safetensors") as err:
        resolve_shards(base)
    assert err.value.exit_code == 3
    with pytest.raises(UsageError):
        resolve_shards(tmp_path / "nothing.safetensors")


def test_shards_that_disagree_are_refused(tmp_path):
    base = tmp_path / "set.safetensors"
    _write_regions(shard_path(base, 0, 2), [(1, 1)])
    _write_regions(shard_path(base, 1, 2), [(2, 1)], meta_extra={"vlkd.teacher_backbone": "other"})
    with pytest.raises(InputError, match="vlkd.teacher_backbone"):
        Regions(base)


def test_regions_value_checks(tmp_path):
    path = tmp_path / "r.safetensors"
    writer = RegionsWriter(path, student_dim=2, teacher_dim=2, feature_dtype="float16")
    with pytest.raises(InputError, match="float16"):
        writer.add(1, (10, 10), np.zeros((1, 4)), [1.0], [0], np.full((1, 2), 1e6), np.zeros((1, 2)))
    writer.close()
    # A box outside its image, written behind the writer's back, is caught on read.
    _write_regions(path, [(1, 1)])
    with safe_open(str(path), framework="np") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = f.metadata()
    tensors["boxes"][0] = [0, 0, 500, 5]
    save_file({k: torch.from_numpy(v) for k, v in tensors.items()}, str(path), metadata=metadata)
    with pytest.raises(InputError, match="outside image 1"):
        Regions(path)
    tensors["boxes"][0] = [0, 0, 5, 5]
    tensors["teacher_features"][0, 0] = np.nan
    save_file({k: torch.from_numpy(v) for k, v in tensors.items()}, str(path), metadata=metadata)
    regions = Regions(path)
    with pytest.raises(InputError, match="non-finite values in teacher_features"):
        regions.image(0)


def test_parse_shard():
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(UsageError):
            parse_shard(bad)
    assert [len(shard_range(10, k, 3)) for k in range(3)] == [3, 3, 4]
