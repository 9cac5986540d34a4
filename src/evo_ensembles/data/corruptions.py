"""The command that generates a corrupted test set under the data root::

    python -m evo_ensembles.data.corruptions fashion-mnist [--root DIR] [--seed 0] [--n N]

The transforms are in :mod:`.image_corruptions` (re-exported here, where they used to
live), the generator and the on-disk sets in :mod:`.corrupted`.
"""

from .corrupted import main
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

if __name__ == "__main__":
    raise SystemExit(main())
