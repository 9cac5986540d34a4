"""LeNet-5 / LeNet-S/M/L: the paper's exact parameter counts, layout, dropout."""

import pytest
import torch
from torch import nn

from evo_ensembles.errors import UserError
from evo_ensembles.models import LENET_WIDTHS, LeNet, build_model, parameter_count

CIFAR = (3, 32, 32)
FMNIST = (1, 28, 28)


@pytest.mark.parametrize(
    "name, cifar10, fmnist10",
    [
        ("lenet-5", 62_006, 44_426),
        ("lenet-s", 253_290, 178_762),  # paper: 253,290 on CIFAR
        ("lenet-m", 1_007_306, 710_794),  # paper: 1,007,306
        ("lenet-l", 4_017_546, 2_834_698),  # paper: 4,017,546
    ],
)
def test_parameter_counts(name, cifar10, fmnist10):
    assert parameter_count(build_model(name, CIFAR, 10)) == cifar10
    assert parameter_count(build_model(name, FMNIST, 10)) == fmnist10


def test_widths_double_from_s_to_m_to_l():
    s, m, l_ = (LENET_WIDTHS[k] for k in ("lenet-s", "lenet-m", "lenet-l"))
    assert s == (16, 32, 256, 128)
    assert m == tuple(2 * w for w in s) and l_ == tuple(2 * w for w in m)


@pytest.mark.parametrize("shape", [CIFAR, FMNIST])
def test_forward_shape_and_layers(shape):
    net = build_model("lenet-s", shape, 7)
    assert net(torch.randn(2, *shape)).shape == (2, 7)
    kinds = [type(m) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert kinds == [nn.Conv2d, nn.Conv2d, nn.Linear, nn.Linear, nn.Linear]
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert net.fc3.out_features == 7  # output layer addressable as "fc3"


def test_dropout_modules():
    assert not any(isinstance(m, nn.Dropout) for m in build_model("lenet-l", FMNIST, 10).modules())
    net = build_model("lenet-5", FMNIST, 10, dropout=0.5)
    drops = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 4 and all(d.p == 0.5 for d in drops)
    # Dropout adds no parameters, so the counts stay the paper's.
    assert parameter_count(build_model("lenet-s", CIFAR, 10, dropout=0.5)) == 253_290


def test_dropout_eval_deterministic_train_stochastic():
    torch.manual_seed(0)
    net = build_model("lenet-5", FMNIST, 10, dropout=0.5)
    x = torch.randn(2, *FMNIST)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    assert not torch.equal(net(x), net(x))


def test_too_small_input_is_user_error():
    with pytest.raises(UserError, match="16"):
        LeNet((1, 12, 12), 10)
    assert LeNet((1, 16, 16), 10)(torch.zeros(1, 1, 16, 16)).shape == (1, 10)
