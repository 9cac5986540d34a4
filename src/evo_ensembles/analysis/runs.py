"""A finished run directory as an ensemble to analyse: its data, parent and members.

:func:`open_run` reads ``config.json`` and ``results.json``, tells which run wrote them, and
returns an :class:`AnalysisRun` that rebuilds, on demand, what analysis needs:

- ``sparse`` / ``stochastic``: member i is ``checkpoints/children/child_{i}`` in a fresh copy
  of the parent's architecture; :meth:`~AnalysisRun.pruned_child` is the parent pruned by
  child i's mask (regenerated from its descriptor), before tuning.
- ``noisy`` / ``imagenet``: member i is a copy of the parent plus its descriptor's noise
  (ImageNet parents normalise inside: inputs are uint8 images, or floats in [0, 1]).
- ``baseline``: the peers of ``checkpoints/ensemble.safetensors``, no parent: separate
  models, :class:`MemberView` s of a multi-output network, or :class:`MCDropoutPass` es.
- ``rl``: an ``rl evaluate`` run (noisy children of the agent's actor) or an ``rl train``
  agent directory (no members). Modules map observations to action logits; ``data()`` is
  ``None`` and :meth:`~AnalysisRun.observations` collects inputs from the parent's own
  episodes, so t-SNE of action distributions, saliency and feature visualisation apply,
  the loss landscape (no labelled data) does not.

Members are made one at a time (a baseline's separate models excepted: they are one file),
and :meth:`~AnalysisRun.member_probs` gives the numbers behind results.json's member metrics.

Examples:
    >>> run = open_run("runs/sparse")                                   # doctest: +SKIP
    >>> run.kind, len(run), run.member_names()[0]                       # doctest: +SKIP
    ('sparse', 4, 'child 1')
    >>> run.member_probs(run.data().test.x[:100]).shape                 # doctest: +SKIP
    torch.Size([4, 100, 10])
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..baselines.common import MemberView
from ..baselines.dropout_passes import MCDropoutPass
from ..calibration import TemperatureFit, tempered_probs
from ..data import DataSplits
from ..devices import resolve_device
from ..ensemble import BaseEnsemble, Ensemble, predict_logits, predict_probs
from ..errors import CheckpointError, UserError, first_line
from ..run_folder import LAYOUT
from ..subnet import ChildSpec, Mask, add_noise_, eligible_parameters
from ..train import read_meta

RUN_KINDS = ("sparse", "stochastic", "noisy", "imagenet", "baseline", "rl")
EXPECTED = ("a run directory of this toolkit (config.json and results.json written by sparse, stochastic, "
            "noisy, imagenet, baseline or rl evaluate, or an rl train agent directory with agent.zip)")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path}: {first_line(e)}") from None
    if not isinstance(d, dict):
        raise UserError(f"{path} does not hold a JSON object")
    return d


_CONFIGS = {"sparse": "sparse:SparseRunConfig", "stochastic": "sparse:StochasticRunConfig",
            "noisy": "noisy:NoisyRunConfig", "imagenet": "imagenet:ImageNetRunConfig",
            "baseline": "baseline:BaselineRunConfig"}


class AnalysisRun:
    """A finished run opened by :func:`open_run` (see the module docstring).

    Attributes: ``path``, ``kind`` (one of :data:`RUN_KINDS`), ``method`` (results.json's,
    e.g. ``"batchensemble"``; ``"agent"`` for an agent directory, whose record is both
    ``config`` and ``results``), ``config`` and ``results`` (the JSON dicts), ``device``.
    Modules come back in eval mode on ``device``; the parent is cached (copy it before
    changing it), members are new objects each call.
    """

    def __init__(self, path: Path, kind: str, method: str, config: dict[str, Any],
                 results: dict[str, Any], device: torch.device) -> None:
        self.path, self.kind, self.method = path, kind, method
        self.config, self.results, self.device = config, results, device
        self._data: DataSplits | None = None
        self._parent: nn.Module | None = None

    def __repr__(self) -> str:
        return f"AnalysisRun({str(self.path)!r}, kind={self.kind!r}, method={self.method!r}, members={len(self)})"

    def __len__(self) -> int:
        return len(self.results.get("members") or [])

    def run_config(self) -> Any:
        """The run's config dataclass rebuilt from config.json (``None`` for RL); fields that
        this version no longer has are ignored, lists become the tuples they were."""
        if self.kind not in _CONFIGS:
            return None
        module, name = _CONFIGS[self.kind].split(":")
        cls = getattr(importlib.import_module(f"evo_ensembles.config.{module}"), name)
        names = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in self.config.items() if k in names})
        except TypeError as e:
            raise UserError(f"{self.path / LAYOUT.config}: {e}") from None

    def data(self) -> DataSplits | None:
        """The train/val/test splits the run used (``None`` for RL), loaded once."""
        if self._data is None:
            self._data = self._load_data()
        return self._data

    def parent(self) -> nn.Module | None:
        """The parent network (``None`` for a baseline's peers), loaded once."""
        if self._parent is None:
            self._parent = self._load_parent()
            if self._parent is not None:
                self._parent.to(self.device).eval()
        return self._parent

    def _required_parent(self) -> nn.Module:
        """:meth:`parent` of a kind that has one (all but baseline, whose ``_load_parent`` is None)."""
        parent = self.parent()
        assert parent is not None  # _load_parent always loads one for these kinds
        return parent

    def member(self, i: int) -> nn.Module:
        """Member ``i`` as a module whose forward returns its logits (B, C)."""
        return self._member(self._index(i)).to(self.device).eval()

    def members(self) -> Iterator[nn.Module]:
        """Each member in turn; only the one being used needs to stay in memory."""
        for i in range(len(self)):
            yield self.member(i)

    def member_names(self) -> list[str]:
        """Labels of the members, for plots."""
        return [f"member {i + 1}" for i in range(len(self))]

    def member_probs(self, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
        """(M, B, C) probabilities of every member on ``x`` (on CPU), one member at a time.

        MC Dropout passes draw their masks over the batches in order: the run's batch size
        (this default, as in ``evaluate``) reproduces its numbers."""
        out = []
        for m in self.members():
            with m.seeded() if isinstance(m, MCDropoutPass) else nullcontext():
                out.append(predict_probs(m, x, batch_size=batch_size))
            del m
        return torch.stack(out) if out else torch.empty(0, len(x), 0)

    @property
    def temperature(self) -> TemperatureFit | None:
        """The ensemble's temperature the run fit on validation (``None`` for a run without one,
        e.g. from an older version, or an RL run)."""
        fit = ((self.results.get("calibrated") or {}).get("ensemble") or {}).get("fit")
        return None if fit is None else TemperatureFit.from_dict(fit, source=str(self.path / LAYOUT.results))

    def predict_proba(self, x: torch.Tensor, *, calibrated: bool = False, batch_size: int = 1024) -> torch.Tensor:
        """(B, C) ensemble probabilities as the run combined them (its ``combine`` rule, the
        parent voting when it did); ``calibrated=True`` applies the run's temperature."""
        t = 1.0
        if calibrated:
            if self.temperature is None:
                raise UserError(f"{self.path} has no fitted temperature (a run from before calibration)")
            t = self.temperature.temperature
        combine = self.config.get("combine", "mean")
        logits = []
        parent = self.parent() if self.config.get("include_parent") else None
        if parent is not None:
            logits.append(predict_logits(parent, x, batch_size=batch_size))
        for m in self.members():
            with m.seeded() if isinstance(m, MCDropoutPass) else nullcontext():
                logits.append(predict_logits(m, x, batch_size=batch_size))
            del m
        return tempered_probs(torch.stack(logits), t, where="members" if combine == "mean" else "combined",
                              combine=combine)

    def ensemble(self) -> BaseEnsemble:
        """The run's ensemble as a library object (:class:`~evo_ensembles.ensemble.BaseEnsemble`:
        ``predict_proba``, ``evaluate``, ``uncertainty``, ``as_module``...) with the run's
        combine rule, parent vote and fitted temperature. Members are loaded now, all of them
        (a noisy run's children are materialised: K copies of the parent)."""
        return Ensemble(list(self.members()), parent=self.parent(),
                        include_parent=bool(self.config.get("include_parent")) and self.parent() is not None,
                        combine=self.config.get("combine", "mean"), temperature=self.temperature)

    def as_module(self, *, calibrated: bool | None = None) -> nn.Module:
        """The run's ensemble as one module for serving or ``torch.export``
        (:meth:`~evo_ensembles.ensemble.BaseEnsemble.as_module`): its forward returns
        :meth:`predict_proba`'s probabilities; ``calibrated`` defaults to whether the run
        fitted a temperature."""
        return self.ensemble().as_module(calibrated=calibrated)

    def child_mask(self, i: int) -> Mask | None:
        """The weights child ``i`` keeps (sparse, stochastic) or perturbs (noisy, imagenet),
        regenerated from its descriptor; ``None`` for other kinds."""
        return None

    def pruned_child(self, i: int) -> nn.Module | None:
        """Child ``i`` right after pruning, before tuning (sparse, stochastic); else ``None``."""
        return None

    def observations(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` observations from the parent policy's own episodes (RL runs only)."""
        raise UserError(f"observations are for RL runs; this is a {self.kind} run (use data())")

    def _index(self, i: int) -> int:
        if not 0 <= i < len(self):
            raise UserError(f"member {i} does not exist: the run has {len(self)} members")
        return i

    def _descriptor(self, i: int) -> ChildSpec:
        entry = self.results["members"][self._index(i)]
        return ChildSpec.from_dict(entry.get("descriptor", entry))

    def _load_data(self) -> DataSplits | None:
        cfg = self.run_config()
        return None if cfg is None else cfg.load_data()

    def _load_parent(self) -> nn.Module | None:
        from ..train.parent import load_model_checkpoint

        return load_model_checkpoint(self.path / LAYOUT.parent, self.data())[0]

    def _member(self, i: int) -> nn.Module:
        raise NotImplementedError


class _SubnetRun(AnalysisRun):
    """sparse / stochastic: tuned children stored one file each."""

    def _member(self, i: int) -> nn.Module:
        from ..train.parent import load_model_checkpoint

        path = self.path / LAYOUT.child(i)
        if not path.is_file():
            raise CheckpointError(f"{path} is missing: child {i} of the run's {len(self)}")
        if read_meta(path).get("descriptor") != self.results["members"][i]["descriptor"]:
            raise CheckpointError(f"{path} holds another child than results.json's member {i} "
                                  "(rerun with other settings?)")
        return load_model_checkpoint(path, self.data())[0]

    def member_names(self) -> list[str]:
        return [f"child {i + 1}" for i in range(len(self))]

    def child_mask(self, i: int) -> Mask:
        # The one-shot mask (an iterative child's last mask when its selection is random;
        # for iterative magnitude pruning the one-shot mask of the parent's magnitudes).
        spec = replace(self._descriptor(i), prune_epochs=0)
        return spec.mask(eligible_parameters(self._required_parent()))

    def pruned_child(self, i: int) -> nn.Module:
        from ..methods.sparse import prune_child

        return prune_child(self._required_parent(), replace(self._descriptor(i), prune_epochs=0))[0].eval()


class _NoisyRun(AnalysisRun):
    """noisy / imagenet: the parent plus K noise descriptors (ensemble.json)."""

    eligibility: dict[str, Any] | None = None

    def _specs(self) -> list[ChildSpec]:
        from ..methods.noisy import NoisyEnsemble

        if self.eligibility is None:
            if any(m["descriptor"].get("kind") == "evolved" for m in self.results["members"]):
                raise UserError(f"{self.path}: members of an evolved run (--generations > 1) are weight "
                                "vectors, not descriptors; analyze a population run")
            ens = NoisyEnsemble.load(self.path / LAYOUT.ensemble, self._required_parent())  # checks the parent
            if [s.to_dict() for s in ens.specs] != [m["descriptor"] for m in self.results["members"]]:
                raise CheckpointError(f"{self.path}: ensemble.json and results.json name other members")
            self.eligibility = ens.eligibility
        return [self._descriptor(i) for i in range(len(self))]

    def _eligibility(self) -> dict[str, Any]:
        """``eligibility`` once :meth:`_specs` has read it from ensemble.json."""
        assert self.eligibility is not None  # every caller calls _specs() first
        return self.eligibility

    def _member(self, i: int) -> nn.Module:
        spec = self._specs()[i]
        child = copy.deepcopy(self._required_parent())  # the in-place perturber's arithmetic: W + sign · N∘M
        add_noise_(eligible_parameters(child, **self._eligibility()), spec)
        return child

    def member_names(self) -> list[str]:
        return [f"child {i + 1} (σ {s.sigma:.3g}, {'+' if s.sign > 0 else '−'})"
                for i, s in enumerate(self._specs())]

    def child_mask(self, i: int) -> Mask:
        spec = self._specs()[self._index(i)]
        return spec.mask(eligible_parameters(self._required_parent(), **self._eligibility()))


class _ImageNetRun(_NoisyRun):
    """imagenet: torchvision weights in the run's normalisation; images from its cache."""

    def _preprocess(self) -> Any:
        from ..data.image_cache import Preprocess

        p = dict(self.results["preprocess"])
        return Preprocess(**{**p, "mean": tuple(p["mean"]), "std": tuple(p["std"])})

    def _load_data(self) -> DataSplits:
        from ..data import ArrayData
        from ..data.image_cache import cached_images
        from ..data.imagenet import find_imagenet_val, load_split

        cfg, pre = self.run_config(), self._preprocess()
        images = find_imagenet_val(cfg.data)
        split = load_split(self.path / LAYOUT.split, images)
        order = split.val + split.test
        x, _ = cached_images([images.files[i] for i in order], pre, cfg.cache_dir or self.path / "cache",
                             workers=cfg.loader_workers, progress=False)
        y, nv = torch.tensor([images.labels[i] for i in order]), len(split.val)
        return DataSplits(name="imagenet-val", train=ArrayData(x[:0], y[:0]), val=ArrayData(x[:nv], y[:nv]),
                          test=ArrayData(x[nv:], y[nv:]), num_classes=int(self.results["weights"]["num_classes"]),
                          input_shape=(3, pre.crop, pre.crop), mean=pre.mean, std=pre.std, seed=split.seed)

    def _load_parent(self) -> nn.Module:
        from ..data.image_cache import Normalize
        from ..models.torchvision_models import pretrained_torchvision_model

        cfg, pre = self.run_config(), self._preprocess()
        net, _ = pretrained_torchvision_model(cfg.model, cfg.weights_arg(), seed=cfg.seed, progress=False,
                                              num_classes=int(self.results["weights"]["num_classes"]))
        return Normalize(net, pre.mean, pre.std)


class _PeerRun(AnalysisRun):
    """baseline: a peer ensemble stored by :func:`~evo_ensembles.baselines.storage.save_peer`."""

    _ens: Any = None

    def _load_parent(self) -> None:
        return None

    def _ensemble(self) -> Any:
        from ..baselines.storage import load_peer

        if self._ens is None:
            path = self.path / LAYOUT.peer_ensemble
            if not path.is_file():
                raise CheckpointError(f"{path} is missing (the trained peer ensemble)")
            self._ens = load_peer(path)[0]
        return self._ens

    def _member(self, i: int) -> nn.Module:
        from ..baselines.common import MultiOutputEnsemble
        from ..baselines.dropout_passes import MCDropoutEnsemble

        ens = self._ensemble()
        if isinstance(ens, MultiOutputEnsemble):
            return MemberView(ens.module, i)
        if isinstance(ens, MCDropoutEnsemble):
            return ens.pass_module(i)
        return ens.members[i]

    def ensemble(self) -> BaseEnsemble:
        ens = self._ensemble()
        ens.temperature = self.temperature
        return ens

    def member_names(self) -> list[str]:
        what = "pass" if self.method == "mc-dropout" else "member"
        return [f"{self.method} {what} {i + 1}" for i in range(len(self))]


class _RLRun(AnalysisRun):
    """rl: a PPO agent's actor (observations → action logits) and its noisy children."""

    _agent: tuple[Any, dict[str, Any]] | None = None

    def agent(self) -> tuple[Any, dict[str, Any]]:
        """The SB3 PPO model and its agent record (loaded once)."""
        from ..agents.train import load_agent

        if self._agent is None:
            where = self.path if self.method == "agent" else Path(self.config["agent"])
            if not (where / LAYOUT.agent).is_file():
                raise UserError(f"the agent this run evaluated is gone: no {where / LAYOUT.agent}")
            self._agent = load_agent(where, device=str(self.device))
            self._agent[0].policy.eval()
        return self._agent

    def _load_parent(self) -> nn.Module:
        from ..agents.ensemble_policy import ActorLogits

        return ActorLogits(self.agent()[0].policy)

    def _member(self, i: int) -> nn.Module:
        from ..agents.ensemble_policy import actor_eligibility

        elig = actor_eligibility()
        if (self.path / LAYOUT.ensemble).is_file():
            elig = _read_json(self.path / LAYOUT.ensemble).get("eligibility") or elig
        child = copy.deepcopy(self._required_parent())  # the actor's modules only (no value head, no optimizer)
        add_noise_(eligible_parameters(child, **elig), self._descriptor(i))
        return child

    def observations(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` observations (tensor on ``device``) visited by the parent policy acting by
        the run's action rule, on the agent's training levels / seed stream."""
        from ..agents.ensemble_policy import PolicyPredictor
        from ..agents.evaluate import collect_observations

        model, meta = self.agent()
        predictor = PolicyPredictor(model.policy, action=self.config.get("action", "sample"), seed=seed)
        obs = collect_observations(predictor, meta, steps=int(n), seed=seed)
        return model.policy.obs_to_tensor(obs)[0]


def _kind(path: Path, results: dict[str, Any]) -> str:
    from ..methods.registry import registry

    name: Any = results.get("method")  # any JSON value
    if name in ("rl", "rl-noisy"):
        return "rl"
    spec = registry().get(name) if isinstance(name, str) else None
    if spec is None:
        raise UserError(f"{path / LAYOUT.results} was written by an unknown method {name!r}; expected {EXPECTED}")
    if spec.reader == "noisy":
        return "imagenet" if "weights" in results and "preprocess" in results else "noisy"
    return {"subnet": name, "peer": "baseline"}[spec.reader]


def open_run(run_dir: str | Path, *, device: str | torch.device = "cpu") -> AnalysisRun:
    """The finished run in ``run_dir`` (see the module docstring); modules go to ``device``.

    Raises :class:`UserError` (one line) for a path that is not a run directory of this
    toolkit, and for an unfinished run (``config.json`` without ``results.json``).
    """
    path = Path(run_dir)
    dev = resolve_device(device)
    if not path.is_dir():
        raise UserError(f"{path} is not a directory; expected {EXPECTED}")
    has_config, has_results = (path / LAYOUT.config).is_file(), (path / LAYOUT.results).is_file()
    if not has_config and not has_results and (path / LAYOUT.agent).is_file():
        from ..agents.train import read_agent_record

        record = read_agent_record(path / LAYOUT.agent) or {}
        return _RLRun(path, "rl", "agent", record, {**record, "members": []}, dev)
    if not has_config:
        raise UserError(f"{path} has no config.json; expected {EXPECTED}")
    if not has_results:
        raise UserError(f"{path} holds an unfinished run (config.json but no results.json); "
                        "rerun its command to finish it")
    config, results = _read_json(path / LAYOUT.config), _read_json(path / LAYOUT.results)
    kind = _kind(path, results)
    classes = {"sparse": _SubnetRun, "stochastic": _SubnetRun, "noisy": _NoisyRun, "imagenet": _ImageNetRun,
               "baseline": _PeerRun, "rl": _RLRun}
    return classes[kind](path, kind, str(results["method"]), config, results, dev)


# The public name (``evo_ensembles.load_run``): a finished run back in Python.
load_run = open_run

__all__ = ["EXPECTED", "RUN_KINDS", "AnalysisRun", "MCDropoutPass", "MemberView", "load_run", "open_run"]
