"""Model zoo: LeNets, MLPs, CIFAR ResNets, wide ResNets and torchvision models by name.

Every model returns logits and keeps its weights in ordinary ``nn.Conv2d``/``nn.Linear``
modules, so subnetwork masks (``evo_ensembles.subnet``) find them by module type.

Examples:
    >>> import torch
    >>> net = build_model("resnet-8", (1, 28, 28), 10)
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from .lenet import LENET_WIDTHS, LeNet
from .mlp import DEFAULT_MLP_HIDDEN, MLP
from .registry import available_models, build_model, parameter_count
from .resnet import BasicBlock, PadShortcut, ResNet, cifar_resnet, resnet18_cifar
from .source import ModelSource, make_model, model_label
from .torchvision_models import build_torchvision_model, torchvision_classification_models
from .wrn import WideBasicBlock, WideResNet

__all__ = [
    "ModelSource",
    "make_model",
    "model_label",
    "DEFAULT_MLP_HIDDEN",
    "LENET_WIDTHS",
    "MLP",
    "BasicBlock",
    "LeNet",
    "PadShortcut",
    "ResNet",
    "WideBasicBlock",
    "WideResNet",
    "available_models",
    "build_model",
    "build_torchvision_model",
    "cifar_resnet",
    "parameter_count",
    "resnet18_cifar",
    "torchvision_classification_models",
]
