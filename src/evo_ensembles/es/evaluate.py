"""Evaluate a population of children in place: perturb, score, revert (constant memory).

Examples:
    >>> import torch, torch.nn as nn
    >>> from evo_ensembles.es import ClassifierFitness, make_noisy_specs
    >>> net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    >>> specs = make_noisy_specs(4, density=0.5, sigma=0.05, seed=0)
    >>> recs = evaluate_children(net, specs, ClassifierFitness(x, y, reference=net), progress=False)
    >>> len(recs), sorted(recs[0])
    (4, ['accuracy', 'fitness', 'kl', 'nll'])
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping, Sequence

from torch import nn
from tqdm.auto import tqdm

from ..checks import check_top_k
from ..errors import UserError
from ..subnet import ChildSpec, InPlacePerturber
from .fitness import Fitness


def evaluate_children(
    model: nn.Module,
    specs: Sequence[ChildSpec],
    fitness: Fitness,
    *,
    perturber: InPlacePerturber | None = None,
    progress: bool = True,
    desc: str = "children",
    cache: MutableMapping[str, dict] | None = None,
) -> list[dict]:
    """One fitness record per child, in order; the model is the parent again afterwards.

    Pass a ``perturber`` to choose the eligible tensors (biases, norms, exclusions) or to
    reuse its parent copy across calls. With a ``cache`` (e.g. a
    :class:`~evo_ensembles.train.checkpoint.RecordCache`), children already scored are not
    scored again, so an interrupted evaluation resumes.
    """
    perturber = perturber or InPlacePerturber(model)
    if perturber.model is not model:
        raise UserError("the perturber belongs to another model")
    records = []
    for spec in tqdm(specs, desc=desc, disable=not progress, leave=False):
        key = "child " + json.dumps(spec.to_dict(), sort_keys=True)
        if cache is not None and key in cache:
            records.append(dict(cache[key]))
            continue
        with perturber.child(spec):
            rec = fitness(model)
        if "fitness" not in rec:
            raise UserError("a fitness function must return a dict with a 'fitness' entry")
        if cache is not None:
            cache[key] = rec
        records.append(rec)
    return records


def top_k(records: Sequence[dict], k: int) -> list[int]:
    """Indices of the ``k`` fittest records, best first (ties: lower index first)."""
    check_top_k(k, len(records))
    def key(i: int) -> tuple[float, int]:
        f = float(records[i]["fitness"])
        return (-f if f == f else float("inf"), i)  # NaN fitness ranks last

    order = sorted(range(len(records)), key=key)
    return order[:k]
