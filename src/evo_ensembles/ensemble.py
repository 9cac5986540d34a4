"""Ensembles: members' outputs as one (M, B, C) probability tensor, and how to combine them.

Examples:
    >>> import torch, torch.nn as nn
    >>> nets = [nn.Linear(4, 3) for _ in range(2)]
    >>> ens = Ensemble(nets)
    >>> ens.member_probs(torch.randn(5, 4)).shape
    torch.Size([2, 5, 3])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import nn

from .checks import check_choice
from .combining import COMBINE_METHODS, combine, voters
from .errors import UserError

if TYPE_CHECKING:
    from .calibration import TemperatureFit
    from .input_scores import Uncertainty

@torch.no_grad()
def predict_logits(
    model: nn.Module,
    x: torch.Tensor,
    *,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Raw outputs (B, C) of ``model`` in eval mode on ``x``, as float32 on CPU."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        outs = [model(x[i : i + batch_size].to(device, non_blocking=True)).float().cpu()
                for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def predict_probs(
    model: nn.Module,
    x: torch.Tensor,
    *,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Softmax outputs (B, C) of ``model`` in eval mode on ``x``, returned on CPU."""
    logits = predict_logits(model, x, batch_size=batch_size, device=device)
    return torch.softmax(logits, 1) if logits.numel() else logits


@runtime_checkable
class Members(Protocol):
    """The one member interface every ensemble kind offers (pruned, noisy, stochastic, RL
    policies, the peer methods): the voting members' outputs as one (M, B, C) tensor."""

    def member_probs(self, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor: ...


class BaseEnsemble:
    """Members plus an optional voting parent, combined on probabilities.

    A subclass says how to compute its members' logits (:meth:`_own_member_logits`);
    whether the parent votes, how votes are combined, the temperature and how the ensemble
    is scored are decided here, once, for every kind.

    ``temperature``: a :class:`~evo_ensembles.calibration.TemperatureFit` (or ``None``) set by
    :meth:`fit_temperature` on validation data, saved with the ensemble, and applied when a
    prediction asks for ``calibrated=True``.
    """

    def __init__(self, *, parent: nn.Module | None = None, include_parent: bool = False,
                 combine: str = "mean", temperature: TemperatureFit | None = None) -> None:
        check_choice(combine, COMBINE_METHODS, "combine")
        if include_parent and parent is None:
            raise UserError("include_parent=True needs a parent")
        self.parent, self.include_parent, self.combine_method = parent, include_parent, combine
        self.temperature = temperature

    def __len__(self) -> int:
        raise NotImplementedError

    def _own_member_logits(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        """(M, B, C) logits of the members alone (never the parent)."""
        raise NotImplementedError

    def _own_member_probs(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        """(M, B, C) probabilities of the members alone (never the parent)."""
        logits = self._own_member_logits(x, batch_size)
        return torch.softmax(logits, -1) if logits.numel() else logits

    def _voting(self, own, parent_fn, x: torch.Tensor, batch_size: int, with_parent: bool | None) -> torch.Tensor:
        include = self.include_parent if with_parent is None else with_parent
        if len(self) == 0 and not include:
            raise UserError("the ensemble has no members")
        members = own(x, batch_size) if len(self) else None
        parent = parent_fn(self.parent, x, batch_size=batch_size) if include and self.parent is not None else None
        if members is None:
            if parent is None:  # with_parent=True on an ensemble without a parent (or members)
                raise UserError("include_parent=True needs a parent")
            return voters(torch.empty(0, *parent.shape), parent, include)
        return voters(members, parent, include)

    def member_probs(self, x: torch.Tensor, *, batch_size: int = 1024,
                     with_parent: bool | None = None) -> torch.Tensor:
        """(M, B, C) probabilities of the voting members (parent first when it votes).

        ``with_parent`` overrides ``include_parent`` for this call (``False``: members only).
        """
        return self._voting(self._own_member_probs, predict_probs, x, batch_size, with_parent)

    def member_logits(self, x: torch.Tensor, *, batch_size: int = 1024,
                      with_parent: bool | None = None) -> torch.Tensor:
        """(M, B, C) raw outputs of the voting members (parent first when it votes)."""
        return self._voting(self._own_member_logits, predict_logits, x, batch_size, with_parent)

    @property
    def temperature_where(self) -> str:
        """How the temperature applies: to every member's logits for the mean, to the combined
        probabilities for the vote (see :mod:`evo_ensembles.calibration`)."""
        return "members" if self.combine_method == "mean" else "combined"

    def predict_proba(self, x: torch.Tensor, *, batch_size: int = 1024, calibrated: bool = False) -> torch.Tensor:
        """(B, C) combined probabilities; ``calibrated=True`` applies the fitted temperature."""
        if not calibrated:
            return combine(self.member_probs(x, batch_size=batch_size), self.combine_method)
        if self.temperature is None:
            raise UserError("no temperature fitted: call fit_temperature(x_val, y_val) first")
        from .calibration import tempered_probs

        return tempered_probs(self.member_logits(x, batch_size=batch_size), self.temperature.temperature,
                              where=self.temperature_where, combine=self.combine_method)

    def fit_temperature(self, x, y: torch.Tensor | None = None, *, batch_size: int = 1024) -> TemperatureFit:
        """Fit one temperature on validation data ``(x, y)`` (or an ArrayData, ``Dataset`` or
        ``DataLoader``) by NLL, keep it (``self.temperature``) and return it.

        Examples:
            >>> import torch, torch.nn as nn
            >>> ens = Ensemble([nn.Linear(4, 3), nn.Linear(4, 3)])
            >>> fit = ens.fit_temperature(torch.randn(64, 4), torch.arange(64) % 3)
            >>> ens.predict_proba(torch.randn(5, 4), calibrated=True).shape
            torch.Size([5, 3])
        """
        from .calibration import fit_temperature
        from .data.loaders import as_tensors

        x, y = as_tensors(x, y, batch_size=batch_size)
        self.temperature = fit_temperature(self.member_logits(x, batch_size=batch_size), y,
                                           where=self.temperature_where, combine=self.combine_method)
        return self.temperature

    def uncertainty(self, x: torch.Tensor, *, batch_size: int = 1024, calibrated: bool = False) -> Uncertainty:
        """Probabilities and per-input uncertainty scores (:func:`evo_ensembles.input_scores.uncertainty`)
        of the voting members on ``x``; ``calibrated=True`` applies the fitted temperature."""
        from .input_scores import uncertainty

        t = 1.0
        if calibrated:
            if self.temperature is None:
                raise UserError("no temperature fitted: call fit_temperature(x_val, y_val) first")
            t = self.temperature.temperature
        return uncertainty(self.member_logits(x, batch_size=batch_size), temperature=t)

    def evaluate(self, x, y: torch.Tensor | None = None, *, ece_bins: int | None = None,
                 batch_size: int = 1024) -> dict:
        """Parent, per-member and ensemble metrics plus diversity on ``(x, y)`` (or on ``x`` an
        ArrayData, ``Dataset`` or ``DataLoader``).

        The same path every recipe and benchmark scores ensembles with
        (:func:`evo_ensembles.metrics.ensemble_metrics`).
        """
        from .data.loaders import as_tensors
        from .metrics import DEFAULT_ECE_BINS, ensemble_metrics

        x, y = as_tensors(x, y, batch_size=batch_size)
        parent = predict_probs(self.parent, x, batch_size=batch_size) if self.parent is not None else None
        members = self.member_probs(x, batch_size=batch_size, with_parent=False)
        return ensemble_metrics(parent, members, y, include_parent=self.include_parent,
                                combine_method=self.combine_method,
                                ece_bins=DEFAULT_ECE_BINS if ece_bins is None else ece_bins)


    def _voting_modules(self) -> list[nn.Module] | nn.Module:
        """The members as modules returning (B, C) logits each, or one module returning
        (M, B, C) logits, for :meth:`as_module` (the parent is added there)."""
        raise UserError(f"a {type(self).__name__} cannot be exported as one module")

    def as_module(self, *, calibrated: bool | None = None) -> EnsembleModule:
        """The ensemble as one :class:`EnsembleModule` in eval mode, for serving code and
        ``torch.export.export``: its forward returns :meth:`predict_proba`'s probabilities (the
        parent voting when it does; the fitted temperature when ``calibrated``, which defaults
        to whether one is fitted). It shares the members' weights (no copy).

        Examples:
            >>> import torch, torch.nn as nn
            >>> ens = Ensemble([nn.Linear(4, 3), nn.Linear(4, 3)])
            >>> x = torch.randn(5, 4)
            >>> torch.allclose(ens.as_module()(x), ens.predict_proba(x))
            True
        """
        calibrated = self.temperature is not None if calibrated is None else calibrated
        if calibrated and self.temperature is None:
            raise UserError("no temperature fitted: call fit_temperature(x_val, y_val) first, or calibrated=False")
        nets = self._voting_modules()
        if self.include_parent:
            if not isinstance(nets, list):
                raise UserError("a parent cannot vote beside a multi-output network in one module")
            assert self.parent is not None  # include_parent needs a parent (checked in __init__)
            nets = [self.parent, *nets]
        # calibrated implies a fitted temperature (checked above)
        temperature = self.temperature.temperature if calibrated and self.temperature is not None else None
        return EnsembleModule(nets, combine=self.combine_method, temperature=temperature).eval()


class EnsembleModule(nn.Module):
    """Voting networks as one ``nn.Module`` whose forward returns the combined (B, C)
    probabilities: ``mean`` or ``vote`` of the members' softmax, or with ``temperature`` the
    temperature-scaled combination (:func:`evo_ensembles.calibration.tempered_probs`).

    ``voters``: a list of modules each returning (B, C) logits (the parent first when it
    votes), or one module returning (M, B, C) logits (TreeNet, BatchEnsemble, MIMO).
    """

    def __init__(self, voters: Sequence[nn.Module] | nn.Module, *, combine: str = "mean",
                 temperature: float | None = None) -> None:
        super().__init__()
        check_choice(combine, COMBINE_METHODS, "combine")
        self.stacked = voters if isinstance(voters, nn.Module) else None
        self.nets = nn.ModuleList([] if isinstance(voters, nn.Module) else list(voters))
        if self.stacked is None and not len(self.nets):
            raise UserError("an ensemble module needs at least one voting network")
        self.combine, self.temperature = combine, temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.stacked(x) if self.stacked is not None else torch.stack([net(x) for net in self.nets])
        if self.temperature is None:
            return combine(torch.softmax(logits.float(), -1), self.combine)
        from .calibration import tempered_probs

        return tempered_probs(logits, self.temperature, where="members" if self.combine == "mean" else "combined",
                              combine=self.combine)


class Ensemble(BaseEnsemble):
    """A list of member networks, optionally with the parent, combined on probabilities.

    Members can be added at any time (growth on demand); ``include_parent`` adds the parent's
    output to the average as in the paper's Algorithm 1.

    ``batched``: members of one architecture can be evaluated as one vmapped computation
    (:func:`stacked_member_probs`) instead of a Python loop. ``"auto"`` (default) batches on
    CUDA and loops on a CPU, where benchmarks/perf_members.py measured the vmapped
    convolutions slower; the rule depends only on the device, so a run's numbers never
    depend on timing. ``True``/``False`` force one. On a CPU, compiling the members pays
    where batching does not: the same benchmark measured ``torch.compile`` of each member
    1.5–1.7× faster than the eager loop for LeNets, and ``Ensemble([torch.compile(m) for m in
    members])`` takes such members as they are (compile time, seconds per shape, not counted).
    """

    def __init__(
        self,
        members: Iterable[nn.Module] = (),
        *,
        parent: nn.Module | None = None,
        include_parent: bool = False,
        combine: str = "mean",
        descriptors: Sequence[dict] | None = None,
        batched: bool | str = "auto",
        temperature: TemperatureFit | None = None,
    ) -> None:
        super().__init__(parent=parent, include_parent=include_parent, combine=combine, temperature=temperature)
        if batched not in (True, False, "auto"):
            raise UserError(f"batched must be True, False or 'auto', got {batched!r}")
        self.members: list[nn.Module] = list(members)
        self.descriptors: list[dict] = list(descriptors) if descriptors else [{} for _ in self.members]
        self.batched = batched
        self._use_batched: bool | None = None if batched == "auto" else bool(batched)

    def __len__(self) -> int:
        return len(self.members)

    def add(self, member: nn.Module, descriptor: dict | None = None) -> None:
        """Grow the ensemble by one member."""
        self.members.append(member)
        self.descriptors.append(descriptor or {})

    def _looped(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        return torch.stack([predict_logits(m, x, batch_size=batch_size) for m in self.members])

    def _voting_modules(self) -> list[nn.Module]:
        return list(self.members)

    def _own_member_logits(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        use = self._use_batched
        if use is None:  # "auto": by device, so numbers never depend on timing
            use = next(self.members[0].parameters()).is_cuda
        if use and len(self.members) > 1 and same_architecture(self.members):
            return stacked_member_logits(self.members, x, batch_size=batch_size)
        return self._looped(x, batch_size)


def same_architecture(members: Sequence[nn.Module]) -> bool:
    """Whether the members share one class and identical parameter/buffer names and shapes."""
    def signature(m: nn.Module) -> tuple:
        return (type(m), tuple((k, tuple(v.shape), v.dtype, v.device) for k, v in m.state_dict().items()))

    first = signature(members[0])
    return all(signature(m) == first for m in members[1:])


@torch.no_grad()
def stacked_member_logits(members: Sequence[nn.Module], x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """(M, B, C) raw outputs of same-architecture members in one vmapped forward per batch
    (``torch.func.stack_module_state`` + ``vmap`` over ``functional_call``), in eval mode."""
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    modes = [m.training for m in members]
    for m in members:
        m.eval()
    try:
        params, buffers = stack_module_state(list(members))
        base = copy.deepcopy(members[0]).to("meta")
        device = next(iter(params.values())).device

        def one(p, b, xb):
            return functional_call(base, (p, b), (xb,))

        outs = [vmap(one, in_dims=(0, 0, None))(params, buffers, x[i:i + batch_size].to(device)).float().cpu()
                for i in range(0, len(x), batch_size)]
    finally:
        for m, t in zip(members, modes):
            m.train(t)
    return torch.cat(outs, dim=1) if outs else torch.empty(len(members), 0)


def stacked_member_probs(members: Sequence[nn.Module], x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """(M, B, C) softmax outputs of :func:`stacked_member_logits`."""
    logits = stacked_member_logits(members, x, batch_size=batch_size)
    return torch.softmax(logits, -1) if logits.numel() else logits
