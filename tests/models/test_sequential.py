"""as_sequential: the same function as the model, with the model's own modules."""

import pytest
import torch

from evo_ensembles.errors import UserError
from evo_ensembles.models import build_model
from evo_ensembles.models.sequential import as_sequential, split_at, split_points


@pytest.mark.parametrize("name", ["lenet-5", "resnet-8", "wrn-10-1", "mlp-16x2"])
@pytest.mark.parametrize("train", [False, True])
def test_view_computes_the_same_function(name, train):
    net = build_model(name, (1, 28, 28), 10, dropout=0.3, seed=0).train(train)
    seq = as_sequential(net)
    x = torch.randn(4, 1, 28, 28)
    # Same dropout draws and BN batch statistics: the view runs the same ops in the same order.
    with torch.random.fork_rng():
        torch.manual_seed(1)
        expected = net(x)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        got = seq(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["lenet-5", "resnet-8", "mlp-16"])
def test_view_shares_the_models_parameters(name):
    net = build_model(name, (1, 28, 28), 10, seed=0)
    seq = as_sequential(net)
    assert {id(p) for p in seq.parameters()} == {id(p) for p in net.parameters()}
    with torch.no_grad():
        next(seq.parameters()).add_(1.0)  # training the view trains the model
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(seq.eval()(x), net.eval()(x))


def test_layer_names_follow_the_models_modules():
    lenet = split_points(as_sequential(build_model("lenet-5", (1, 28, 28), 10)))
    assert lenet == ["conv1", "relu1", "pool1", "drop1", "conv2", "relu2", "pool2", "drop2", "flatten",
                     "fc1", "relu3", "drop3", "fc2", "relu4", "drop4", "fc3"]
    resnet = split_points(as_sequential(build_model("resnet-8", (1, 28, 28), 10)))
    assert resnet == ["conv1", "bn1", "relu", "layer1", "layer2", "layer3", "avgpool", "flatten", "fc"]


@pytest.mark.parametrize("at", ["conv1", "conv2", "fc1", "fc3"])
def test_split_composes_back_to_the_model(at):
    net = build_model("lenet-5", (1, 28, 28), 10, seed=0).eval()
    head, tail = split_at(as_sequential(net), at)
    assert split_points(head) + split_points(tail) == split_points(as_sequential(net))
    assert split_points(tail)[0] == at
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(tail(head(x)), net(x), rtol=0, atol=0)


def test_mlp_split_keeps_plain_sequentials():
    head, tail = split_at(as_sequential(build_model("mlp-8x2", (1, 4, 4), 3)), "fc2")
    assert type(head) is torch.nn.Sequential and split_points(tail) == ["fc2", "relu2", "fc3"]


def test_unsupported_models_and_bad_split_names_are_refused():
    with pytest.raises(UserError, match="torch.nn.modules.linear.Linear; supported: the library's LeNet"):
        as_sequential(torch.nn.Linear(3, 2))
    with pytest.raises(UserError, match="supported"):
        as_sequential(build_model("torchvision:resnet18", (3, 32, 32), 10))
    with pytest.raises(UserError, match="no layer 'layer9'.*conv1, bn1"):
        split_at(as_sequential(build_model("resnet-8", (1, 28, 28), 10)), "layer9")
