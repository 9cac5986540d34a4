"""Analysis of trained ensembles (SPEC §5): the parts the ``analyze`` command puts together.

Each function works on plain ``nn.Module`` s and tensors and takes an explicit seed:

- :mod:`.tsne` — prediction clusters: t-SNE of members' output vectors, coloured by class,
  prediction and mistake.
- :mod:`.features` — feature visualisation of one unit (Adam from noise under random
  jitter/scale/rotate transforms).
- :mod:`.saliency` — SmoothGrad maps (captum).
- :mod:`.hashes` — perceptual hashes (imagehash) and RMSE between members' images.
- :mod:`.landscape` — loss surfaces along filter-normalised random directions.

Heavy optional libraries (captum, imagehash, scikit-learn — the ``analysis`` extra — and
matplotlib, torchvision) load only when a function that needs them runs.
"""

from __future__ import annotations

from .features import (
    TransformParams,
    UnitVisualisation,
    apply_transform,
    plot_image_grid,
    random_transform_params,
    unit_layers,
    visualise_unit,
)
from .hashes import (
    HASH_KINDS,
    distance_matrices,
    hamming_matrices,
    image_hashes,
    mean_distances,
    plot_distance_matrices,
    rmse_matrix,
    to_pil,
)
from .landscape import (
    dataset_loss,
    filter_normalised_direction,
    landscape_directions,
    loss_surface,
    plot_landscapes,
)
from .saliency import member_saliency, saliency_image, smoothgrad
from .tsne import member_embedding, plot_tsne

__all__ = [
    "HASH_KINDS",
    "TransformParams",
    "UnitVisualisation",
    "apply_transform",
    "dataset_loss",
    "distance_matrices",
    "filter_normalised_direction",
    "hamming_matrices",
    "image_hashes",
    "landscape_directions",
    "loss_surface",
    "member_embedding",
    "member_saliency",
    "mean_distances",
    "plot_distance_matrices",
    "plot_image_grid",
    "plot_landscapes",
    "plot_tsne",
    "random_transform_params",
    "rmse_matrix",
    "saliency_image",
    "smoothgrad",
    "to_pil",
    "unit_layers",
    "visualise_unit",
]
