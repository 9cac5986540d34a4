"""The ``analyze`` command: why an ensemble works, drawn from its run directory (SPEC §5,
dissertation chapter 7).

Writes ``RUN_DIR/analysis/`` (or ``out``): ``figures/*.png``, ``analysis.json`` and
``analysis.md``. Each part is recorded in analysis.json with its settings as it finishes, so
an interrupted analysis resumes with the next part; the feature visualisations and saliency
maps are also kept per member (``features/``, ``saliency/``), so a part interrupted halfway
resumes with its next member. Members are regenerated or loaded one at a time
(:mod:`evo_ensembles.analysis.runs`).

Examples:
    >>> from evo_ensembles.recipes.analyze import AnalyzeConfig, run_analyze
    >>> cfg = AnalyzeConfig(run_dir="runs/sparse", parts=("tsne", "hashes"), steps=256)
    >>> summary = run_analyze(cfg, progress=False)                          # doctest: +SKIP
    >>> summary["parts"]["hashes"]["features"]["perceptual"]                # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..analysis import (
    distance_matrices,
    landscape_directions,
    loss_surface,
    mean_distances,
    member_embedding,
    plot_distance_matrices,
    plot_image_grid,
    plot_landscapes,
    plot_tsne,
    saliency_image,
    smoothgrad,
    unit_layers,
    visualise_unit,
)
from ..analysis.runs import AnalysisRun, MemberView, open_run
from ..config.analyze import AnalyzeConfig
from ..devices import resolve_device
from ..errors import UserError
from ..provenance import provenance
from ..reporting import markdown_table
from ..run_folder import LAYOUT, RunFolder, atomic_write, write_json, write_text


def _inputs(run: AnalysisRun, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None, tuple, Any, Any]:
    """Test inputs (the first n), their labels, the input shape and the normalisation."""
    data = run.data()
    if data is None:  # an RL run: observations collected with the parent policy
        x = run.observations(n, seed=seed).float()
        return x, None, tuple(x.shape[1:]), None, None
    x, y = data.test.x[:n], data.test.y[:n]
    if x.dtype == torch.uint8:  # ImageNet's cache: the model normalises [0, 1] images itself
        return x.float() / 255, y, tuple(x.shape[1:]), None, None
    return x, y, tuple(data.input_shape), data.mean, data.std


def _models(run: AnalysisRun) -> list[tuple[str, Any]]:
    """(name, loader) for the parent (when there is one) and every member, loaded on use."""
    out = [("parent", run.parent)] if run.parent() is not None else []
    names = run.member_names()
    return out + [(names[i], lambda i=i: run.member(i)) for i in range(len(run))]


def _per_model(folder: Path, name: str, settings: dict, compute) -> np.ndarray:
    """One model's array, kept in ``folder`` with its settings so a rerun reuses it."""
    path = folder / f"{name}.npy"
    meta = folder / f"{name}.json"
    if path.is_file() and meta.is_file() and json.loads(meta.read_text()) == settings:
        return np.load(path)
    arr = np.asarray(compute())
    atomic_write(path, lambda tmp: np.save(tmp, arr))
    write_json(meta, settings)
    return arr


def _default_layer(model: nn.Module, layer: str | None) -> str:
    if layer is not None:
        return layer
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    layers = convs or list(unit_layers(model))
    if not layers:
        raise UserError("this model has no convolution or linear layer to visualise; give --layer")
    return layers[-1]


def with_logit_units(model: nn.Module, classes: int) -> nn.Module:
    """``model`` followed by an identity ``logits`` layer, so its class logits are units.

    Members of one network with several heads (TreeNet, BatchEnsemble, MIMO) share hidden
    units, or compute them for every member in one tiled batch; a member's own units are its
    logits, so their feature visualisation is of a class unit.
    """
    eye = nn.Linear(classes, classes)
    with torch.no_grad():
        eye.weight.copy_(torch.eye(classes))
        eye.bias.zero_()
    return nn.Sequential(OrderedDict(member=model, logits=eye))


def part_tsne(run, cfg, out, progress):
    x, y, *_ = _inputs(run, cfg.examples, cfg.seed)
    probs = run.member_probs(x)
    if y is None:
        y = probs.mean(0).argmax(1)  # RL: colour by the ensemble's action
    emb = member_embedding(probs, seed=cfg.seed,
                           perplexity=min(30.0, max(2.0, (probs.shape[0] * probs.shape[1] - 1) / 3)))
    plot_tsne(out / LAYOUT.figures / "tsne.png", emb, probs, y, title=f"{run.method}: members' outputs",
              member_labels=run.member_names())
    return {"examples": int(x.shape[0]), "members": int(probs.shape[0]), "figure": "figures/tsne.png"}


def _need_images(shape: tuple, part: str) -> None:
    if len(shape) != 3:
        raise UserError(f"{part} draws images; this run's inputs have shape {tuple(shape)}, not (C, H, W)")


def part_features(run, cfg, out, progress):
    x, _, shape, mean, std = _inputs(run, 1, cfg.seed)
    _need_images(shape, "feature visualisation")
    models = _models(run)
    first = models[0][1]()
    if isinstance(first, MemberView) and cfg.layer is None:  # one network, several heads
        classes = int(first(x).shape[-1])
        models = [(n, lambda load=load: with_logit_units(load(), classes)) for n, load in models]
        layer = "logits"
    else:
        layer = _default_layer(first, cfg.layer)
    settings = {"layer": layer, "channel": cfg.channel, "steps": cfg.steps, "seed": cfg.seed}
    images = []
    for name, load in tqdm(models, desc="features", disable=not progress, leave=False):
        def compute(load=load):
            return visualise_unit(load(), layer, cfg.channel, shape, steps=cfg.steps, seed=cfg.seed, mean=mean,
                                  std=std).image.numpy()
        images.append(_per_model(out / "features", name, settings, compute))
    plot_image_grid(out / LAYOUT.figures / "features.png", [[torch.from_numpy(i) for i in images]],
                    col_labels=[n for n, _ in models], title=f"{layer}, unit {cfg.channel}")
    return {**settings, "models": [n for n, _ in models], "figure": "figures/features.png"}


def part_saliency(run, cfg, out, progress):
    x, y, shape, *_ = _inputs(run, cfg.images, cfg.seed)
    _need_images(shape, "saliency")
    settings = {"images": int(x.shape[0]), "seed": cfg.seed}
    models = _models(run)
    rows = []
    for name, load in tqdm(models, desc="saliency", disable=not progress, leave=False):
        def compute(load=load):
            model = load()
            target = y if y is not None else model(x).argmax(1)
            attr = smoothgrad(model, x, target, seed=cfg.seed)
            return torch.stack([saliency_image(a) for a in attr]).numpy()
        rows.append(_per_model(out / "saliency", name, settings, compute))
    plot_image_grid(out / LAYOUT.figures / "saliency.png", [[torch.from_numpy(m) for m in r] for r in rows],
                    row_labels=[n for n, _ in models], title="SmoothGrad saliency", cmap="magma")
    return {**settings, "models": [n for n, _ in models], "figure": "figures/saliency.png"}


def part_hashes(run, cfg, out, progress, done):
    """Hamming distances of each hash, and RMSE, between the models' feature visualisations and
    between their saliency maps (of each image, averaged over images)."""
    for part, fn in (("features", part_features), ("saliency", part_saliency)):
        if done.get(part) is None:
            done[part] = fn(run, cfg, out, progress)
    names = done["features"]["models"]
    feats = [torch.from_numpy(np.load(out / "features" / f"{n}.npy")) for n in names]
    mats = distance_matrices(feats)
    plot_distance_matrices(out / LAYOUT.figures / "hashes_features.png", mats, labels=names,
                           title="distances between feature visualisations")
    sal = [np.load(out / "saliency" / f"{n}.npy") for n in names]
    per_image = [distance_matrices([torch.from_numpy(s[k]) for s in sal]) for k in range(sal[0].shape[0])]
    sal_mats = {k: np.mean([m[k] for m in per_image], axis=0) for k in per_image[0]}
    plot_distance_matrices(out / LAYOUT.figures / "hashes_saliency.png", sal_mats, labels=names,
                           title="distances between saliency maps (mean over images)")
    members_only = [i for i, n in enumerate(names) if n != "parent"]

    def members(m: dict) -> dict:
        return mean_distances({k: np.asarray(v)[np.ix_(members_only, members_only)] for k, v in m.items()})

    return {"models": names, "features": members(mats), "saliency": members(sal_mats),
            "matrices": {"features": {k: np.asarray(v).tolist() for k, v in mats.items()},
                         "saliency": {k: np.asarray(v).tolist() for k, v in sal_mats.items()}},
            "figures": ["figures/hashes_features.png", "figures/hashes_saliency.png"]}


def part_landscape(run, cfg, out, progress):
    pruned = run.pruned_child(cfg.child)
    if pruned is None:
        raise UserError(f"the loss landscape of parent, pruned child and tuned child needs a sparse or "
                        f"stochastic run; {run.path} is a {run.kind} run")
    data = run.data()
    x, y = data.train.x[:cfg.landscape_examples], data.train.y[:cfg.landscape_examples]
    axis = np.linspace(-cfg.span, cfg.span, cfg.grid)
    mask = run.child_mask(cfg.child)
    models = {"parent": (run.parent(), None), "pruned child": (pruned, mask),
              "tuned child": (run.member(cfg.child), mask)}
    surfaces = {}
    for name, (model, m) in tqdm(models.items(), desc="landscape", disable=not progress, leave=False):
        surfaces[name] = loss_surface(model, landscape_directions(model, seed=cfg.seed, mask=m), x, y,
                                      alphas=axis, betas=axis)
    plot_landscapes(out / LAYOUT.figures / "landscape.png", surfaces, axis, axis,
                    title=f"loss f(α, β) on {len(x)} training examples ({run.member_names()[cfg.child]})")
    return {"child": cfg.child, "grid": cfg.grid, "span": cfg.span, "examples": int(len(x)),
            "loss_at_origin": {k: float(v[cfg.grid // 2, cfg.grid // 2]) for k, v in surfaces.items()},
            "surfaces": {k: v.tolist() for k, v in surfaces.items()}, "figure": "figures/landscape.png"}


PART_FUNCTIONS = {"tsne": part_tsne, "features": part_features, "saliency": part_saliency,
                  "landscape": part_landscape}


def _settings(cfg: AnalyzeConfig, part: str) -> dict:
    keys = {"tsne": ("examples", "seed"), "features": ("layer", "channel", "steps", "seed"),
            "saliency": ("images", "seed"), "hashes": ("layer", "channel", "steps", "images", "seed"),
            "landscape": ("child", "grid", "span", "landscape_examples", "seed")}[part]
    return {k: getattr(cfg, k) for k in keys}


def run_analyze(cfg: AnalyzeConfig, out: str | Path | None = None, *, progress: bool = True) -> dict[str, Any]:
    """Draw ``cfg.parts`` for the run in ``cfg.run_dir``; returns the analysis.json record."""
    # a given --out that cannot be made fails before the run is opened
    folder = None if out is None else RunFolder(out, threads=cfg.threads, device=cfg.device)
    run = open_run(cfg.run_dir, device=resolve_device(cfg.device))
    folder = folder or RunFolder(Path(cfg.run_dir) / LAYOUT.analysis, threads=cfg.threads, device=cfg.device)
    with folder:  # creates out; one writer at a time
        return _analyze(cfg, run, folder.path, progress)


def _analyze(cfg: AnalyzeConfig, run: AnalysisRun, out: Path, progress: bool) -> dict[str, Any]:
    record_path = out / LAYOUT.analysis_record
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    parts = record.get("parts", {}) if record.get("run_dir") == str(cfg.run_dir) else {}
    done = {p: v["result"] for p, v in parts.items() if v.get("settings") == _settings(cfg, p) and "result" in v}
    for part in cfg.parts:
        if part in parts and parts[part].get("settings") == _settings(cfg, part):
            continue
        if progress:
            print(f"analyze: {part}", flush=True)
        try:
            result = (part_hashes(run, cfg, out, progress, done) if part == "hashes"
                      else PART_FUNCTIONS[part](run, cfg, out, progress))
            parts[part] = {"settings": _settings(cfg, part), "result": result}
        except UserError as e:
            if len(cfg.parts) == 1:
                raise
            parts[part] = {"settings": _settings(cfg, part), "skipped": str(e)}
        done[part] = parts[part].get("result")
        record = {"run_dir": str(cfg.run_dir), "kind": run.kind, "method": run.method, "members": len(run),
                  "parts": parts, **provenance()}
        write_json(record_path, record)  # each finished part survives an interruption
    record = {"run_dir": str(cfg.run_dir), "kind": run.kind, "method": run.method, "members": len(run),
              "parts": parts, **provenance()}
    write_json(record_path, record)
    write_text(out / LAYOUT.analysis_report, report(record))
    return record


def report(record: dict[str, Any]) -> str:
    """analysis.md: one section per part with its figures and numbers."""
    lines = [f"# Analysis of {record['run_dir']} ({record['method']}, {record['members']} members)"]
    for part, v in record["parts"].items():
        lines.append(f"## {part}")
        if "skipped" in v:
            lines.append(f"Not applicable: {v['skipped']}")
            continue
        r = v["result"]
        if part == "hashes":
            kinds = list(r["features"])
            lines.append("Mean pairwise distance between members (Hamming bits for hashes, RMSE on [0, 1] images):")
            lines.append(markdown_table(["images", *kinds], [["feature visualisations", *r["features"].values()],
                                                             ["saliency maps", *r["saliency"].values()]]))
            lines += [f"![{f}]({f})" for f in r["figures"]]
        else:
            if part == "landscape":
                lines.append(markdown_table(["model", "loss at (0, 0)"],
                                            [[k, x] for k, x in r["loss_at_origin"].items()]))
            lines.append(f"![{part}]({r['figure']})")
    return "\n\n".join(lines) + "\n"


def print_summary(record: dict[str, Any]) -> str:
    """What the CLI prints: one line per part."""
    return "\n".join(f"{p}: {'skipped (' + v['skipped'] + ')' if 'skipped' in v else 'done'}"
                     for p, v in record["parts"].items())


__all__ = ["AnalyzeConfig", "print_summary", "run_analyze"]
