import numpy as np
import pytest
import torch
from PIL import Image

from fsrlib.features.backbones import BACKBONES, VGGFc7, WeightsUnavailableError, get_backbone_spec, load_backbone
from fsrlib.features.degrade import degrade


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet_lite0")


def test_unknown_backbone_names_the_known_ones():
    with pytest.raises(KeyError, match="efficientnet_lite0"):
        get_backbone_spec("resnet9000")


def test_lite0_feature_shape(lite0):
    spec = get_backbone_spec("efficientnet_lite0")
    x = spec.to_tensor([Image.new("RGB", (224, 224), (120, 30, 200))] * 3)
    with torch.inference_mode():
        f = lite0(x)
    assert f.shape == (3, 1280) and torch.isfinite(f).all()


def test_lite0_weights_are_imagenet(lite0):
    """scikit-image's 'chelsea' must be classified as a cat (ImageNet classes 281-285)."""
    import skimage.data

    spec = get_backbone_spec("efficientnet_lite0")
    img = degrade(Image.fromarray(skimage.data.chelsea()), 1.0).upsampled
    with torch.inference_mode():
        logits = lite0.net(spec.to_tensor([img]))
    assert int(logits.argmax()) in range(281, 286)
    assert float(logits.softmax(1).max()) > 0.5


def test_preprocessing_rejects_wrong_inputs():
    spec = get_backbone_spec("efficientnet_lite0")
    with pytest.raises(ValueError, match="224x224"):
        spec.to_tensor([Image.new("RGB", (100, 224))])
    with pytest.raises(ValueError, match="RGB"):
        spec.to_tensor([Image.new("L", (224, 224))])


def test_vgg16_offline_fails_clearly(monkeypatch):
    def no_internet(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_internet)
    with pytest.raises(WeightsUnavailableError, match="never falls back to random weights"):
        load_backbone("vgg16_fc7")


@pytest.mark.slow
def test_vgg_fc7_wrapper_shape():
    from torchvision.models import vgg16

    model = VGGFc7(vgg16(weights=None)).eval()
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 224, 224)).shape == (1, BACKBONES["vgg16_fc7"].dim)


def test_registry_entries_are_consistent():
    for name, spec in BACKBONES.items():
        assert spec.name == name and spec.dim > 0 and spec.input_size == 224
        assert np.all(np.array(spec.std) > 0)
