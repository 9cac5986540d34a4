"""Peer methods behind one interface: each returns an :class:`~evo_ensembles.Ensemble`
trained through the one training loop, with its cost in epochs."""

from .simple import BaselineResult, bagging, dropout_model, independent

__all__ = ["BaselineResult", "bagging", "dropout_model", "independent"]
