"""The command that generates a corrupted test set under the data root::

    python -m evo_ensembles.data.corruptions fashion-mnist [--root DIR] [--seed 0] [--n N]

The transforms are in :mod:`.image_corruptions` (re-exported here, where they used to
live), the generator and the on-disk sets in :mod:`.corrupted`.
"""

from ..config.generate import generator_main
from .corrupted import generate_corrupted
from .image_corruptions import (
    CORRUPTIONS,
    GENERATOR_VERSION,
    GROUPS,
    MEANINGS,
    PARAMS,
    SEVERITIES,
    corrupt,
    corruption_rng,
    to_uint8,
)

__all__ = ["CORRUPTIONS", "GENERATOR_VERSION", "GROUPS", "MEANINGS", "PARAMS", "SEVERITIES", "corrupt",
           "corruption_rng", "main", "to_uint8"]



def main(argv: list[str] | None = None) -> int:
    """Generate a corrupted test set (see :func:`~evo_ensembles.data.corrupted.generate_corrupted`);
    exit 2 on a user error."""
    return generator_main(argv, prog="python -m evo_ensembles.data.corruptions",
                          description="Generate NAME-c (Fashion-MNIST-C or MNIST-C) beside the clean data set.",
                          generate=generate_corrupted)


if __name__ == "__main__":
    raise SystemExit(main())
