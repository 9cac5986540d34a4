"""The ``sparse`` run: train (or load) a parent, prune-and-tune children, report.

Writes into ``out``: ``config.json``, ``results.json`` (stable keys), ``report.md``,
``figures/*.png`` and ``checkpoints/`` (``parent.safetensors``, its record in the file's
header, reusable with ``--parent``; one file per child). Re-running with the same ``out`` resumes: a trained
parent and finished children are reused, an interrupted training continues from its last
epoch, and asking for more children grows the ensemble.

Examples:
    >>> from evo_ensembles.recipes.sparse import SparseRunConfig, run_sparse
    >>> cfg = SparseRunConfig(model="lenet-5", parent_epochs=1, children=2, subset=512)
    >>> results = run_sparse(cfg, "runs/demo", progress=False)     # doctest: +SKIP
    >>> results["ensemble"]["accuracy"]                             # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, cast

from ..config.sparse import CHILD_LR_FACTOR, SparseRunConfig
from ..data import DataSplits, dataset_augment
from ..devices import set_threads
from ..ensemble import Ensemble, predict_probs
from ..errors import UserError
from ..methods.sparse import TunedChild, prune_and_tune
from ..methods.stochastic import build_child
from ..models import build_model
from ..provenance import provenance
from ..reporting import (
    SUMMARY_HEADERS,
    markdown_table,
    plot_heatmap,
    plot_member_accuracy,
    text_table,
    uncertainty_sections,
    write_uncertainty_figures,
)
from ..reporting import (
    summary_rows as shared_summary_rows,
)
from ..run_folder import LAYOUT, RunFolder
from ..scoring import corrupted_scores, ood_inputs, score_run
from ..subnet import (
    ChildSpec,
    eligible_parameters,
    mask_density,
    resolve_dense_layers,
)
from ..train import load_state_into, load_tensors, parent_fingerprint, read_meta, save_model
from ..train.parent import load_model_checkpoint, model_meta, train_or_load_parent
from .common import subnetwork_cost


def run_sparse(cfg: SparseRunConfig, out: str | Path, *, progress: bool = True,
               data: DataSplits | None = None) -> dict[str, Any]:
    """Run the whole Prune-and-Tune pipeline; returns the results dict also saved to disk.

    ``data``: your own splits (default: the data set ``cfg`` names).

    ``cfg`` may be a subclass (e.g. ``StochasticRunConfig``): its ``child_specs``,
    ``METHOD``, ``TITLE`` and ``extra_results`` make the same pipeline another method.
    """
    t_start = time.perf_counter()
    run = RunFolder(out, threads=cfg.threads, device=cfg.device)  # checks only: nothing is made yet
    if data is not None and cfg.workers > 1:
        raise UserError("--workers: each worker loads the data set the config names; "
                        "tune your own DataSplits in this process (workers=1)")
    data = cfg.load_data() if data is None else data
    ood = ood_inputs(cfg, data)  # a missing or unknown OOD set fails before any training
    if cfg.parent is not None:  # a checkpoint that does not fit fails before --out is made
        probe, _ = load_model_checkpoint(cfg.parent, data, cfg.model)
    else:
        probe = build_model(
            cast(str, cfg.model), data.input_shape, data.num_classes
        )  # unknown names fail here
    resolve_dense_layers(eligible_parameters(probe), cfg.dense_layers)  # so do unknown layers
    with run:  # creates out; one writer at a time
        return _run(cfg, run, data, ood, t_start, progress)


def _run(cfg: SparseRunConfig, run: RunFolder, data: DataSplits, ood: Any, t_start: float,
         progress: bool) -> dict[str, Any]:
    out, device = run.path, run.device
    run.write_config(cfg.to_dict())
    parent, parent_meta, parent_s = train_or_load_parent(
        out,
        data,
        cast(str, cfg.model),  # resolve() set it
        cfg.parent_train_config(),
        parent_path=cfg.parent,
        device=device,
        progress=progress,
    )
    if cfg.parent is not None:  # keep a copy so the run directory is self-contained
        save_model(
            run / LAYOUT.parent,
            parent,
            {**model_meta(parent_meta["model"], data), "source": str(cfg.parent)},
        )

    specs = cfg.child_specs()
    children, densities, child_s, masks = _children(
        out, cfg, parent, parent_meta["model"], data, specs, device, progress
    )
    share = cfg.child_bagging or 1.0  # a bagged child tunes on that share of train
    cost = subnetwork_cost(parent, parent_meta, data, cfg.batch_size,
                           [(m, [(e * share, x) for e, x in tuning_phases(s, cfg.child_epochs)])
                            for m, s in zip(masks, specs)])
    t_eval = time.perf_counter()
    ens = Ensemble(children, parent=parent, include_parent=cfg.include_parent, combine=cfg.combine)
    scores = score_run(lambda x: ens.member_logits(x, with_parent=False), parent, data.val, data.test,
                       ood, include_parent=cfg.include_parent, combine=cfg.combine,
                       ece_bins=cfg.ece_bins, progress=progress)
    test, val = scores["test"], scores["validation"]
    corrupted = corrupted_scores(data, {"parent": lambda x: predict_probs(parent, x), "ensemble": ens.predict_proba},
                                 ece_bins=cfg.ece_bins, examples=cfg.corrupted_examples, progress=progress)
    eval_s = time.perf_counter() - t_eval

    # The keys of evo_ensembles.results.SparseResults, plus the config's extra_results()
    # (stochastic: "annealing", which SparseResults does not declare): a plain dict.
    results: dict[str, Any] = {
        "method": cfg.METHOD,
        "split": "test",
        "ece_bins": cfg.ece_bins,
        "parent": test["parent"],
        "members": [
            {**m, "density": d, "tune_seconds": s, "descriptor": spec.to_dict()}
            for m, d, s, spec in zip(test["members"], densities, child_s, specs)
        ],
        "ensemble": {
            **test["ensemble"],
            "size": len(children) + int(cfg.include_parent),
            "combine": cfg.combine,
            "include_parent": cfg.include_parent,
        },
        "diversity": test["diversity"],
        "corrupted": corrupted,
        "calibrated": scores["calibrated"],
        "ood": scores["ood"],
        "selective": scores["selective"],
        "validation": None
        if val is None
        else {"parent": val["parent"], "ensemble": val["ensemble"]},
        **cost,
        "config": cfg.to_dict(),
        "seed": cfg.seed,
        "data": data.describe(),
        "timing": {
            "parent_train_seconds": parent_s,
            "children_train_seconds": sum(child_s),
            "eval_seconds": eval_s,
            "total_seconds": time.perf_counter() - t_start,
            "note": "train seconds count work done in this invocation (0 when reused)",
        },
        **cfg.extra_results(),
        **provenance(),
    }
    _write_outputs(run, results, cfg.TITLE)
    return results


class ChildDirectory:
    """:class:`~evo_ensembles.methods.sparse.ChildStore` of a run directory.

    ``child_{i}.safetensors`` holds a finished child with its run key (descriptor, tuning
    settings, parent identity), so a rerun reuses exactly the children it would make again;
    ``child_{i}_resume/`` holds an interrupted tuning.
    """

    def __init__(self, root: Path, key: dict[str, Any], meta: dict[str, Any]) -> None:
        self.root, self.key, self.meta = Path(root), key, meta

    def _path(self, index: int) -> Path:
        return self.root / f"child_{index}.safetensors"

    def _key(self, spec: ChildSpec) -> dict[str, Any]:
        return {"descriptor": spec.to_dict(), **self.key}

    def has(self, index: int, spec: ChildSpec) -> bool:
        """Whether child ``index`` of ``spec`` is stored (for this parent and settings)."""
        path = self._path(index)
        return path.is_file() and read_meta(path).get("run_key") == self._key(spec)

    def load(self, index: int, spec: ChildSpec, child) -> bool:
        if not self.has(index, spec):
            return False
        path = self._path(index)
        load_state_into(child, load_tensors(path), str(path))
        return True

    def save(self, index: int, spec: ChildSpec, child, result) -> None:
        save_model(
            self._path(index),
            child,
            {
                **self.meta,
                "run_key": self._key(spec),
                "descriptor": spec.to_dict(),
                "history": result.history,
            },
        )

    def resume_dir(self, index: int) -> Path:
        return self.root / f"child_{index}_resume"


def _child_setup(out: Path, cfg: SparseRunConfig, parent, model_name: str, data):
    """The children's tuning settings, augmentation and store (the same in every process)."""
    tune_cfg = cfg.child_train_config()
    augment = data.augment
    if cfg.child_augment is not None and cfg.child_augment != cfg.augment:
        augment = dataset_augment(cfg.dataset) if cfg.child_augment else None
    key: dict[str, Any] = {"tune": tune_cfg.to_dict(), "parent": parent_fingerprint(parent)}
    if augment is not data.augment:  # only then, so keys of earlier runs still match
        key["augment"] = augment is not None
    if cfg.child_bagging is not None:  # likewise
        key["bag_fraction"] = cfg.child_bagging
    store = ChildDirectory(out / LAYOUT.children, key, model_meta(model_name, data))
    return tune_cfg, augment, store


def tune_child_job(cfg: SparseRunConfig, out: str | Path, index: int) -> float:
    """Tune child ``index`` of the run in ``out`` into its store, in this process (a Ray task).

    It gets the run config and directory, not a model: it loads the data and the parent
    checkpoint itself, so its child is exactly the one the run would tune in-process.
    Returns the tuning seconds (0 when the child was already there).
    """
    set_threads(cfg.threads or 1)
    _fault_hook(index)
    out = Path(out)
    data = cfg.load_data()
    parent, meta = load_model_checkpoint(out / LAYOUT.parent, data, cfg.model)
    tune_cfg, augment, store = _child_setup(out, cfg, parent, meta["model"], data)
    done: list[TunedChild] = []
    prune_and_tune(parent, [cfg.child_specs()[index]], data.train, tune_cfg, val=data.val, augment=augment,
                   device=cfg.device, progress=False, store=store,
                   child_factory=build_child, on_child=done.append, first_index=index,
                   bag_fraction=cfg.child_bagging)
    return done[0].seconds


FAULT_ENV = "EVO_ENSEMBLES_KILL_WORKER_ONCE"  # tests: "<marker file>:<child index>"


def _fault_hook(index: int) -> None:
    """Tests kill a worker mid-run once (the marker file records that it happened)."""
    spec = os.environ.get(FAULT_ENV)
    if spec:
        marker, _, child = spec.rpartition(":")
        if int(child) == index and not Path(marker).exists():
            Path(marker).write_text("killed")
            os._exit(1)


def _tune_on_ray(out: Path, cfg: SparseRunConfig, pending: list[int], progress: bool) -> dict[int, float]:
    """Tune the ``pending`` children on ``cfg.workers`` Ray workers (retried if a worker dies)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=cfg.ray_address, num_cpus=None if cfg.ray_address else cfg.workers,
                 include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        job = ray.remote(num_cpus=1, max_retries=2)(tune_child_job)
        futures = {i: job.remote(cfg, str(out), i) for i in pending}
        seconds = {}
        for i, f in futures.items():
            seconds[i] = ray.get(f)
            if progress:
                print(f"child {i + 1} tuned on a Ray worker ({seconds[i]:.1f}s)", flush=True)
        return seconds
    finally:
        if started:
            ray.shutdown()


def _children(out, cfg, parent, model_name, data, specs, device, progress):
    """Build and tune each child through :func:`prune_and_tune`, reusing those saved in ``out``.

    With ``cfg.workers > 1`` the missing children are first tuned on Ray workers into the
    run's store; the in-process pass then only loads them.
    """
    tune_cfg, augment, store = _child_setup(out, cfg, parent, model_name, data)
    remote: dict[int, float] = {}
    if cfg.workers > 1:
        pending = [i for i in range(len(specs)) if not store.has(i, specs[i])]
        if pending:
            remote = _tune_on_ray(out, cfg, pending, progress)
    done: list[TunedChild] = []
    prune_and_tune(
        parent,
        specs,
        data.train,
        tune_cfg,
        val=data.val,
        augment=augment,
        device=device,
        progress=progress,
        store=store,
        child_factory=build_child,
        on_child=done.append,
        bag_fraction=cfg.child_bagging,
    )
    return (
        [c.model for c in done],
        [mask_density(c.mask) for c in done],
        [remote.get(c.index, c.seconds) for c in done],
        [c.mask for c in done],
    )


def tuning_phases(spec: ChildSpec, epochs: int) -> list[tuple[float, float]]:
    """``(epochs, expected active share of the pruned weights)`` of a child's tuning, for its
    FLOP count: one-shot pruning 0 throughout; iterative pruning removes an equal share at the
    start of each of its E_p epochs; stochastic annealing keeps pruned weights with a
    probability annealed (cosine, mean half its start) to 0 over E_a epochs: T0 to 0 for
    temperature annealing, about 0.5 to 0 for random/mog."""
    if spec.kind == "stochastic":
        start = spec.t0 if spec.anneal == "temperature" else 0.5
        return [(float(spec.anneal_epochs), start / 2), (float(epochs - spec.anneal_epochs), 0.0)]
    if spec.prune_epochs:
        e_p = spec.prune_epochs
        return [(1.0, (e_p - 1 - j) / e_p) for j in range(e_p)] + [(float(epochs - e_p), 0.0)]
    return [(float(epochs), 0.0)]


def summary_rows(results: dict[str, Any]) -> list[list[object]]:
    e = results["ensemble"]
    return shared_summary_rows(results, f"ensemble ({e['size']}, {e['combine']})")


def _report(results: dict[str, Any], title: str) -> str:
    cfg = results["config"]
    members = [
        [
            i + 1,
            m["accuracy"],
            m["nll"],
            m["ece"],
            m["density"],
            m["descriptor"]["part"] if m["descriptor"]["k"] else "-",
        ]
        for i, m in enumerate(results["members"])
    ]
    div = results["diversity"]
    return (
        "\n\n".join(
            [
                f"# {title} — {cfg['model']} on {cfg['dataset']}",
                f"Test split, {results['data']['sizes']['test']} examples; ECE with {results['ece_bins']} "
                f"equal-width bins; seed {results['seed']}; commit {results['commit']}.",
                markdown_table(SUMMARY_HEADERS, summary_rows(results)),
                *([f"Annealing: {results['annealing']}"] if "annealing" in results else []),
                "## Members",
                markdown_table(
                    ["member", "accuracy", "NLL", "ECE", "density", "partition part"], members
                ),
                "## Diversity (off-diagonal means over member pairs)",
                markdown_table(
                    ["disagreement", "KL", "correlation"],
                    [[div["disagreement"], div["kl"], div["correlation"]]],
                ),
                "## Timing (seconds)",
                markdown_table(
                    list(results["timing"])[:-1], [list(results["timing"].values())[:-1]]
                ),
                "![members](figures/member_accuracy.png)\n\n![disagreement](figures/disagreement.png)",
                *uncertainty_sections(results),
            ]
        )
        + "\n"
    )


def _write_outputs(run: RunFolder, results: dict[str, Any], title: str) -> None:
    figs = run.figures
    plot_member_accuracy(
        figs / "member_accuracy.png",
        [m["accuracy"] for m in results["members"]],
        results["parent"]["accuracy"],
        results["ensemble"]["accuracy"],
        title=f"{results['config']['model']} on {results['config']['dataset']}",
    )
    if len(results["members"]) > 1:
        plot_heatmap(
            figs / "disagreement.png",
            results["diversity"]["matrices"]["disagreement"],
            "prediction disagreement",
            "fraction of test inputs",
        )
    write_uncertainty_figures(figs, results)
    run.finish(results, _report(results, title))


def print_summary(results: dict[str, Any]) -> str:
    """The parent-vs-ensemble table the CLI prints."""
    return text_table(SUMMARY_HEADERS, summary_rows(results))


__all__ = ["CHILD_LR_FACTOR", "SparseRunConfig", "print_summary", "run_sparse"]
