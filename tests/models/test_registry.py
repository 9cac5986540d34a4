"""build_model / available_models: every name, both input shapes, errors."""

import pytest
import torch
from torch import nn

from evo_ensembles.errors import UnknownNameError, UserError
from evo_ensembles.models import available_models, build_model, parameter_count

SHAPES = [(1, 28, 28), (3, 32, 32)]
# Every fixed name plus one instance of each pattern (small ones where it matters).
CHEAP_NAMES = [
    "lenet-5",
    "lenet-s",
    "lenet-m",
    "lenet-l",
    "mlp",
    "mlp-64",
    "mlp-32x3",
    "resnet-8",
    "resnet-20",
    "resnet-14",
    "wrn-10-1",
]


def test_available_models_lists_names_and_patterns():
    names = available_models()
    for n in [
        "lenet-5",
        "lenet-s",
        "lenet-m",
        "lenet-l",
        "mlp",
        "resnet-8",
        "resnet-18",
        "resnet-20",
        "mlp-<width>",
        "mlp-<width>x<depth>",
        "wrn-<depth>-<width>",
        "torchvision:<name>",
    ]:
        assert n in names
    for n in names:  # every fixed name builds
        if "<" not in n:
            with torch.device("meta"):
                build_model(n, (3, 32, 32), 10)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", CHEAP_NAMES)
def test_output_shape(name, shape):
    net = build_model(name, shape, 10)
    assert net(torch.randn(2, *shape)).shape == (2, 10)


@pytest.mark.parametrize("shape", SHAPES)
def test_resnet18_one_forward(shape):
    net = build_model("resnet-18", shape, 100)
    with torch.no_grad():
        assert net(torch.randn(2, *shape)).shape == (2, 100)


def test_mlp_names():
    assert build_model("mlp", (1, 28, 28), 10).hidden == (512, 512, 512)
    assert build_model("mlp-64", (1, 28, 28), 10).hidden == (64,)
    assert build_model("mlp-128x2", (1, 28, 28), 10).hidden == (128, 128)
    assert parameter_count(build_model("mlp-64", (1, 28, 28), 10)) == 784 * 64 + 64 + 64 * 10 + 10


def test_names_are_case_insensitive():
    for a, b in [
        ("LeNet-S", "lenet-s"),
        ("MLP-64", "mlp-64"),
        ("ResNet-8", "resnet-8"),
        ("WRN-10-1", "wrn-10-1"),
        ("lenet_l", "lenet-l"),
        ("  resnet-20 ", "resnet-20"),
    ]:
        assert parameter_count(build_model(a, (3, 32, 32), 10)) == parameter_count(
            build_model(b, (3, 32, 32), 10)
        )


@pytest.mark.parametrize("name", ["mlp", "lenet-5", "resnet-8", "wrn-10-1"])
def test_dropout_flag(name):
    plain = build_model(name, (3, 32, 32), 10)
    dropped = build_model(name, (3, 32, 32), 10, dropout=0.5)
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())
    assert any(isinstance(m, nn.Dropout) for m in dropped.modules())
    assert parameter_count(plain) == parameter_count(dropped)
    dropped.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(dropped(x), dropped(x))


@pytest.mark.parametrize("name", ["lenet-5", "mlp-16", "resnet-8", "wrn-10-1"])
def test_weights_are_plain_conv_and_linear(name):
    net = build_model(name, (3, 32, 32), 10)
    owners = {
        type(m)
        for m in net.modules()
        for n, _ in m.named_parameters(recurse=False)
        if n == "weight"
    }
    assert owners <= {nn.Conv2d, nn.Linear, nn.BatchNorm2d}


@pytest.mark.parametrize("name", ["lenet-7", "vgg", "", "resnet", "wrn-16", "mlp-x2"])
def test_unknown_name(name):
    with pytest.raises(UnknownNameError, match="available: .*lenet-s"):
        build_model(name, (3, 32, 32), 10)


@pytest.mark.parametrize(
    "shape", [(32, 32), (3, 32, 32, 1), (0, 32, 32), (3, -1, 32), (3.0, 32, 32), "3x32x32", None]
)
def test_bad_input_shape(shape):
    with pytest.raises(UserError, match="input_shape"):
        build_model("lenet-5", shape, 10)


@pytest.mark.parametrize("num_classes", [0, -3, 2.5, True, "10"])
def test_bad_num_classes(num_classes):
    with pytest.raises(UserError, match="num_classes"):
        build_model("lenet-5", (3, 32, 32), num_classes)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan"), "half"])
def test_bad_dropout(p):
    with pytest.raises(UserError, match="dropout"):
        build_model("mlp", (1, 28, 28), 10, dropout=p)


def test_torchvision_resnet18():
    net = build_model("torchvision:resnet18", (3, 32, 32), 10)
    assert net.fc.out_features == 10
    assert net.training  # the build-time shape check restores training mode
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert parameter_count(build_model("TorchVision:ResNet18", (3, 32, 32), 10)) == parameter_count(
        net
    )


def test_torchvision_errors():
    with pytest.raises(UnknownNameError, match="resnet18"):
        build_model("torchvision:resnet19", (3, 32, 32), 10)
    with pytest.raises(UserError, match="dropout"):
        build_model("torchvision:resnet18", (3, 32, 32), 10, dropout=0.5)
    with pytest.raises(UserError, match="3-channel"):
        build_model("torchvision:resnet18", (1, 28, 28), 10)
    with pytest.raises(UserError, match="cannot process"):
        build_model("torchvision:squeezenet1_1", (3, 16, 16), 10)
