"""Subnetworks: masks, partitions, child descriptors and perturbations (pure tensor code)."""

from .descriptor import KINDS, ChildSpec, derive_seed, make_child_specs
from .masks import (
    Mask,
    check_partition,
    complement,
    eligible_parameters,
    mask_density,
    mask_distance,
    pack_mask,
    partition_masks,
    sample_mask,
    total_diversity,
    unpack_mask,
)
from .noise import InPlacePerturber, add_noise_, noise_delta, noisy_child, sample_noise
from .prune import apply_mask, masked_fraction_zero

__all__ = [
    "KINDS",
    "ChildSpec",
    "InPlacePerturber",
    "Mask",
    "add_noise_",
    "apply_mask",
    "check_partition",
    "complement",
    "derive_seed",
    "eligible_parameters",
    "make_child_specs",
    "mask_density",
    "mask_distance",
    "noise_delta",
    "noisy_child",
    "masked_fraction_zero",
    "pack_mask",
    "partition_masks",
    "sample_mask",
    "sample_noise",
    "total_diversity",
    "unpack_mask",
]
