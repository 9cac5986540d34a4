"""Config of the ``imagenet`` run: a torchvision model's Noisy Subnetwork Ensemble on the
ILSVRC-2012 validation images (the paper's Table 4.1).

Defaults are the paper's (SPEC §2): a seeded 40k test / 10k validation split (40 and 10 per
class), σ from the KL trust region over [0.001, 0.015] at density 0.5 on 1,000 validation
images, 16 children by neural partitioning and mirrored noise, the top 8 by validation
accuracy.

Examples:
    >>> cfg = ImageNetRunConfig(data="/data/imagenet", model="resnet18")
    >>> cfg.search_settings().sigmas[0], cfg.search_settings().densities, cfg.population, cfg.top_k
    (0.001, (0.5,), 16, 8)
    >>> cfg.weights_arg() == "DEFAULT", ImageNetRunConfig(data="d", model="alexnet", weights="none").weights_arg()
    (True, None)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import check_nonneg_int, check_positive, check_positive_int
from ..errors import UserError
from .fields import option
from .noisy import NoisySearchFields
from .shared import EnsembleFields, RuntimeFields

PREPROCESSING = ("weights", "paper")
PAPER_SIGMAS = (0.001, 0.002, 0.003, 0.004, 0.006, 0.008, 0.010, 0.0125, 0.015)


def _sigma_list(text: str) -> tuple[float, ...]:
    import argparse

    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    return values


def _check_sigmas(values: tuple[float, ...], flag: str) -> tuple[float, ...]:
    for v in values:
        check_positive(v, flag)
    return values


@dataclass(kw_only=True)
class ImageNetRunConfig(NoisySearchFields, EnsembleFields, RuntimeFields):
    """Settings of an ``imagenet`` run; each field is one CLI flag."""

    data: str = option(help="ILSVRC-2012 validation images: an ImageFolder tree, a flat folder with "
                            "the devkit, or the official tar pair (see the README)", group="data")
    split: str | None = option(None, "split file of an earlier run (split.json), so every model "
                                     "sees the same images", metavar="SPLIT_JSON", group="data")
    val_per_class: int = option(10, "validation images per class", check=check_positive_int, group="data")
    test_per_class: int = option(40, "test images per class", check=check_positive_int, group="data")
    preprocess: str = option("weights", "the weights' own transforms(), or the paper's (resize 256, "
                                        "centre crop 224, ImageNet mean/std)", choices=PREPROCESSING,
                             group="data")
    loader_workers: int = option(2, "DataLoader workers decoding images", check=check_nonneg_int,
                                 group="data")
    cache_dir: str | None = option(None, "where decoded images are cached (share it between models)",
                                   default_help="OUT/cache", group="data")
    model: str = option(help="a torchvision classification model, e.g. resnet18", group="model")
    weights: str = option("DEFAULT", "DEFAULT or a named entry (torchvision's weights, downloaded "
                                     "through its cache), a .safetensors / state-dict file, or none",
                          group="model")
    batch_size: int = option(128, "evaluation batch size", check=check_positive_int, group="model")
    sigma_grid: tuple[float, ...] = option(PAPER_SIGMAS, "σ values of the trust-region grid",
                                           parse=_sigma_list, check=_check_sigmas, metavar="S1,S2,...",
                                           group="trust region", default_help="the paper's, 0.001 to 0.015")

    def resolve(self) -> None:
        super().resolve()
        self.sigma_grid = tuple(float(s) for s in self.sigma_grid)

    def check(self) -> None:
        super().check()
        if not self.model.strip():
            raise UserError("--model must name a torchvision model")
        if self.ood_names():
            raise UserError("--ood-sets: no OOD set is offered for ImageNet runs (use auto or none); "
                            "calibration and selective scores are reported")

    def weights_arg(self) -> str | None:
        """``weights`` as :func:`~evo_ensembles.models.pretrained_torchvision_model` takes it."""
        return None if self.weights.strip().lower() in ("none", "random") else self.weights

    def search_densities(self) -> tuple[float, ...]:
        return (self.density,)  # the paper searches σ at the mutation density only

    def extra_search(self) -> dict:
        return {"sigmas": self.sigma_grid}


__all__ = ["ImageNetRunConfig", "PAPER_SIGMAS", "PREPROCESSING"]
