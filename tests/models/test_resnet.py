"""CIFAR ResNets and wide ResNets: shapes, parameter counts, in-block dropout."""

import pytest
import torch
from torch import nn

from evo_ensembles.errors import UnknownNameError, UserError
from evo_ensembles.models import PadShortcut, build_model, parameter_count


def _meta_count(name: str, shape=(3, 32, 32), num_classes: int = 10) -> int:
    # Building on the meta device allocates nothing, so big nets cost ~no time here.
    with torch.device("meta"):
        return parameter_count(build_model(name, shape, num_classes))


@pytest.mark.parametrize(
    "name, count",
    [
        ("resnet-8", 75_290),
        ("resnet-20", 269_722),  # He et al. 2016: 0.27M
        ("resnet-18", 11_173_962),
        ("wrn-16-4", 2_748_890),
        ("wrn-28-10", 36_479_194),  # Zagoruyko & Komodakis: 36.5M
    ],
)
def test_known_parameter_counts(name, count):
    assert _meta_count(name) == count


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
@pytest.mark.parametrize("name", ["resnet-8", "resnet-20", "wrn-10-1", "wrn-16-1"])
def test_small_nets_forward(name, shape):
    net = build_model(name, shape, 10)
    assert net(torch.randn(2, *shape)).shape == (2, 10)


def test_cifar_resnet_uses_parameter_free_shortcuts():
    net = build_model("resnet-20", (3, 32, 32), 10)
    assert sum(isinstance(m, PadShortcut) for m in net.modules()) == 2
    assert all(m.kernel_size == (3, 3) for m in net.modules() if isinstance(m, nn.Conv2d))


def test_resnet18_stem_keeps_resolution():
    net = build_model("resnet-18", (3, 32, 32), 10)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    assert [net.layer1[0].conv1.out_channels, net.layer4[0].conv1.out_channels] == [64, 512]


@pytest.mark.parametrize("name", ["resnet-8", "wrn-10-1"])
def test_dropout_inside_blocks(name):
    assert not any(isinstance(m, nn.Dropout) for m in build_model(name, (3, 32, 32), 10).modules())
    net = build_model(name, (3, 32, 32), 10, dropout=0.3)
    blocks = [m for m in net.modules() if hasattr(m, "conv2") and hasattr(m, "dropout")]
    assert blocks and all(isinstance(b.dropout, nn.Dropout) and b.dropout.p == 0.3 for b in blocks)
    x = torch.randn(2, 3, 32, 32)
    net.eval()
    assert torch.equal(net(x), net(x))


def test_wrn_bad_depth_and_width():
    with pytest.raises(UserError, match="depth"):
        build_model("wrn-27-10", (3, 32, 32), 10)
    with pytest.raises(UserError, match="width"):
        build_model("wrn-16-0", (3, 32, 32), 10)


@pytest.mark.parametrize("name", ["resnet-19", "resnet-50", "resnet-2"])
def test_bad_resnet_depth(name):
    with pytest.raises(UnknownNameError, match="resnet-8"):
        build_model(name, (3, 32, 32), 10)
