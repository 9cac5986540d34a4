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
from .prune import apply_mask, masked_fraction_zero

__all__ = [
    "KINDS",
    "ChildSpec",
    "Mask",
    "apply_mask",
    "check_partition",
    "complement",
    "derive_seed",
    "eligible_parameters",
    "make_child_specs",
    "mask_density",
    "mask_distance",
    "masked_fraction_zero",
    "pack_mask",
    "partition_masks",
    "sample_mask",
    "total_diversity",
    "unpack_mask",
]
