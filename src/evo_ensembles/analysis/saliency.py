"""SmoothGrad saliency maps (Smilkov et al. 2017; SPEC §5 "interpretable diversity").

SmoothGrad averages the absolute input gradient of the target class's output over
``samples`` noisy copies of each input: ``mean_k |∂f_y(x + ε_k)/∂x|``, ε_k ~ N(0, σ²).
It is captum's ``NoiseTunnel(Saliency(model))`` with ``nt_type="smoothgrad"``.

Noise level: ``stdev`` is a fraction of the batch's value range, σ = stdev · (max x − min x),
as in the paper (which recommends 10–20 %); captum itself takes an absolute σ.

Seeding: captum draws its noise with ``torch.normal`` from torch's global generator on the
input's device. :func:`smoothgrad` forks that generator (``torch.random.fork_rng``), seeds
the fork with ``seed`` and leaves the caller's global random state exactly as it was. The
same seed gives the same noise for every model, so members' maps differ only through the
members (:func:`member_saliency`).

Examples:
    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    >>> x = torch.randn(2, 1, 4, 4); y = torch.tensor([0, 2])
    >>> smoothgrad(net, x, y, samples=4).shape
    torch.Size([2, 1, 4, 4])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..checks import check_nonneg, check_positive_int
from ..errors import UserError

DEFAULT_SAMPLES = 25
DEFAULT_STDEV = 0.15  # fraction of the input range (Smilkov et al.: 10–20 %)


def smoothgrad(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    samples: int = DEFAULT_SAMPLES,
    stdev: float = DEFAULT_STDEV,
    seed: int = 0,
    batch_size: int | None = None,
) -> torch.Tensor:
    """SmoothGrad maps (N, C, H, W) of ``model`` for inputs ``x`` (N, C, H, W) and classes
    ``target`` (N,), on CPU.

    ``stdev`` is relative to the batch's value range (see the module docstring);
    ``batch_size`` bounds how many noisy copies captum evaluates at once (default: all
    ``N · samples``). The model runs in eval mode (restored after); its parameters get no
    gradients; the global random state is left as it was.
    """
    from captum.attr import NoiseTunnel, Saliency

    check_positive_int(samples, "samples")
    check_nonneg(stdev, "stdev")
    if target.shape != (x.shape[0],):
        raise UserError(f"target must have shape ({x.shape[0]},), got {tuple(target.shape)}")
    device = next(model.parameters()).device
    x = x.detach().to(device).float()
    target = target.to(device)
    sigma = float(stdev * (x.max() - x.min())) if x.numel() else 0.0
    nt_batch = None if batch_size is None else max(1, batch_size // max(1, x.shape[0]))
    was_training = model.training
    model.eval()
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            torch.random.default_generator.manual_seed(seed)
            if cuda:
                with torch.cuda.device(cuda[0]):
                    torch.cuda.manual_seed(seed)
            attr = NoiseTunnel(Saliency(model)).attribute(
                x, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=nt_batch,
                stdevs=sigma, target=target,
            )
    finally:
        model.train(was_training)
    return attr.detach().cpu()


def member_saliency(
    members: Sequence[nn.Module],
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    samples: int = DEFAULT_SAMPLES,
    stdev: float = DEFAULT_STDEV,
    seed: int = 0,
    batch_size: int | None = None,
) -> torch.Tensor:
    """SmoothGrad maps of each member, (M, N, C, H, W), all with the same noise (same seed).

    Examples:
        >>> import torch, torch.nn as nn
        >>> nets = [nn.Sequential(nn.Flatten(), nn.Linear(4, 2)) for _ in range(3)]
        >>> member_saliency(nets, torch.randn(5, 1, 2, 2), torch.zeros(5, dtype=torch.long),
        ...                 samples=2).shape
        torch.Size([3, 5, 1, 2, 2])
    """
    return torch.stack([
        smoothgrad(m, x, target, samples=samples, stdev=stdev, seed=seed, batch_size=batch_size)
        for m in members
    ])


def saliency_image(attr: torch.Tensor) -> torch.Tensor:
    """A (C, H, W) map as one (H, W) image to show or hash: the maximum over channels of the
    absolute attribution (Simonyan et al. 2014)."""
    return attr.abs().amax(dim=0) if attr.dim() == 3 else attr.abs()
