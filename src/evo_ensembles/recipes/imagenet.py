"""The ``imagenet`` run: a torchvision model's Noisy Subnetwork Ensemble on ILSVRC-2012 val.

Table 4.1 of the paper, one model per run: the images are split (or the split of an earlier
run is reused), decoded once into a uint8 cache, the parent's probabilities are computed
once and kept, σ is searched by the KL trust region on 1,000 validation images, 16 children
are scored on validation, the top 8 are evaluated on test, one child at a time, each kept
on disk until the run ends, so an interrupted run redoes no finished child.

Writes into ``out``: ``config.json``, ``split.json`` (pass it to the next model with
``--split``), ``results.json``, ``report.md`` (a Table 4.1 row), ``figures/``,
``ensemble.json`` (the 8 descriptors), ``cache/`` (the decoded images, unless ``--cache-dir``).

Examples:
    >>> from evo_ensembles.recipes.imagenet import ImageNetRunConfig, run_imagenet
    >>> cfg = ImageNetRunConfig(data="/data/imagenet/val", model="resnet18")
    >>> results = run_imagenet(cfg, "runs/imagenet-resnet18")          # doctest: +SKIP
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..config.imagenet import ImageNetRunConfig
from ..data.image_cache import Normalize, Preprocess, cached_images
from ..data.imagenet import find_imagenet_val, load_split, make_split, save_split
from ..ensemble import predict_logits
from ..errors import UserError
from ..methods.noisy import noisy_ensemble
from ..metrics import ensemble_metrics, mean_kl
from ..models.torchvision_models import pretrained_torchvision_model, weights_enum
from ..provenance import provenance
from ..run_folder import LAYOUT, RunFolder
from ..schema import CACHED_RECORDS
from ..scoring import Outputs, uncertainty_results
from ..subnet import eligible_parameters, resolve_dense_layers
from ..train.checkpoint import (
    RecordCache,
    load_tensors,
    parent_fingerprint,
    read_meta,
    save_tensors,
)
from .noisy import print_summary, test_scores, write_noisy_outputs


def _preprocess(cfg: ImageNetRunConfig, info: dict) -> Preprocess:
    if cfg.preprocess == "paper":
        return Preprocess.paper()
    if info["transforms_of"] is None:
        raise UserError(f"torchvision has no weights (so no transforms()) for {cfg.model}; use --preprocess paper")
    return Preprocess.from_weights(weights_enum(cfg.model, info["transforms_of"]),
                                   source=f"{info['transforms_of']}.transforms()")


def _kept_logits(path: Path, key: dict, compute) -> torch.Tensor:
    """Logits stored at ``path`` for ``key``, or computed now and stored (atomically)."""
    if path.is_file() and read_meta(path).get("key") == key:
        return load_tensors(path)["logits"]
    logits = compute()
    save_tensors(path, {"logits": logits.contiguous()}, {"key": key})
    return logits


def run_imagenet(cfg: ImageNetRunConfig, out: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Run one model's noisy ensemble on ImageNet val; returns the results saved to disk."""
    t_start = time.perf_counter()
    run = RunFolder(out, threads=cfg.threads, device=cfg.device)  # checks only: nothing is made yet
    images = find_imagenet_val(cfg.data)
    split = load_split(cfg.split, images) if cfg.split else make_split(
        images, val_per_class=cfg.val_per_class, test_per_class=cfg.test_per_class, seed=cfg.seed)
    net, winfo = pretrained_torchvision_model(cfg.model, cfg.weights_arg(), num_classes=len(images.wnids),
                                              seed=cfg.seed, progress=progress)
    if winfo["num_classes"] != len(images.wnids):
        raise UserError(f"{cfg.model} predicts {winfo['num_classes']} classes, the data in {cfg.data} has "
                        f"{len(images.wnids)} (a partial copy of ImageNet?)")
    preprocess = _preprocess(cfg, winfo)
    resolve_dense_layers(eligible_parameters(net), cfg.dense_layers)  # unknown layers fail before any work

    with run:  # creates out; one writer at a time
        return _run(cfg, run, images, split, net, winfo, preprocess, t_start, progress)


def _run(cfg: ImageNetRunConfig, run: RunFolder, images: Any, split: Any, net: nn.Module, winfo: dict[str, Any],
         preprocess: Any, t_start: float, progress: bool) -> dict[str, Any]:
    device = run.device
    run.write_config(cfg.to_dict())
    save_split(run / LAYOUT.split, split, images)
    t_decode = time.perf_counter()
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else run / LAYOUT.cache
    order = split.val + split.test  # one cache for both parts
    x_all, cache_info = cached_images([images.files[i] for i in order], preprocess, cache_dir,
                                      workers=cfg.loader_workers, progress=progress)
    labels = torch.tensor([images.labels[i] for i in order])
    nv = len(split.val)
    val_x, val_y, test_x, test_y = x_all[:nv], labels[:nv], x_all[nv:], labels[nv:]
    decode_s = time.perf_counter() - t_decode

    parent = Normalize(net, preprocess.mean, preprocess.std).to(device).eval()
    identity = {"parent": parent_fingerprint(parent), "preprocess": preprocess.to_dict(),
                "split": split.fingerprint, "val": len(split.val), "test": len(split.test), "seed": split.seed}
    ckpt = run / LAYOUT.checkpoints
    t_parent = time.perf_counter()
    parent_val_logits = _kept_logits(ckpt / "parent_val_logits.safetensors", identity,
                                     lambda: predict_logits(parent, val_x, batch_size=cfg.batch_size))
    parent_test_logits = _kept_logits(ckpt / "parent_test_logits.safetensors", identity,
                                      lambda: predict_logits(parent, test_x, batch_size=cfg.batch_size))
    parent_val, parent_test = torch.softmax(parent_val_logits, 1), torch.softmax(parent_test_logits, 1)
    parent_s = time.perf_counter() - t_parent

    # The KL probe: probe_size validation images drawn across classes (never test images).
    g = torch.Generator().manual_seed(cfg.seed)
    probe_idx = torch.randperm(nv, generator=g)[: min(cfg.probe_size, nv)].sort().values
    t_search = time.perf_counter()
    cache = RecordCache(run / LAYOUT.noisy_records, identity={**identity, "probe_size": cfg.probe_size,
                                                               "fitness": cfg.fitness},
                        schemas=CACHED_RECORDS)
    res = noisy_ensemble(parent, val_x, val_y, cfg.search_settings(), probe_x=val_x[probe_idx],
                         probe_y=val_y[probe_idx], include_parent=cfg.include_parent, combine=cfg.combine,
                         fitness_metric=cfg.fitness, seed=cfg.seed, progress=progress, cache=cache)
    res.ensemble.save(run / LAYOUT.ensemble)
    search_s = time.perf_counter() - t_search

    t_eval = time.perf_counter()
    member_logits: dict[str, list[torch.Tensor]] = {"val": [], "test": []}
    for i, spec in enumerate(tqdm(res.ensemble.specs, desc="members: val, test", disable=not progress, leave=False)):
        for part, xs in (("val", val_x), ("test", test_x)):
            def member(s=spec, xs=xs) -> torch.Tensor:
                with res.ensemble.perturber.child(s):
                    return predict_logits(parent, xs, batch_size=cfg.batch_size)
            member_logits[part].append(_kept_logits(ckpt / "members" / f"member_{i}_{part}_logits.safetensors",
                                                    {**identity, "descriptor": spec.to_dict()}, member))
    member_val_logits, member_test_logits = torch.stack(member_logits["val"]), torch.stack(member_logits["test"])
    member_test = torch.softmax(member_test_logits, -1)
    test: dict[str, Any] = ensemble_metrics(parent_test, member_test, test_y, include_parent=cfg.include_parent,
                                            combine_method=cfg.combine, ece_bins=cfg.ece_bins)
    val: dict[str, Any] = ensemble_metrics(parent_val, torch.softmax(member_val_logits, -1), val_y,
                                           include_parent=cfg.include_parent, combine_method=cfg.combine,
                                           ece_bins=cfg.ece_bins)
    unc = uncertainty_results(Outputs(parent_val_logits, member_val_logits), val_y,
                              Outputs(parent_test_logits, member_test_logits), test_y, {},
                              include_parent=cfg.include_parent, combine=cfg.combine, ece_bins=cfg.ece_bins)
    member_kl = [mean_kl(parent_test, p) for p in member_test]
    eval_s = time.perf_counter() - t_eval

    sel = [res.records[i] for i in res.selected]
    population = [{"descriptor": s.to_dict(), **r, "selected": i in res.selected}
                  for i, (s, r) in enumerate(zip(res.population, res.records))]
    results: dict[str, Any] = {  # NoisyResults plus the ImageNet keys (weights, preprocess, device, ...)
        "method": "noisy",
        "mode": "population",
        **test_scores(test, cfg, len(member_test)),
        "sigma": res.sigma,
        "density": cfg.density,
        "mean_kl": sum(member_kl) / len(member_kl),
        "members": [{**m, "kl": member_kl[i], "validation": sel[i], "descriptor": res.ensemble.specs[i].to_dict()}
                    for i, m in enumerate(test["members"])],
        "diversity": test["diversity"],
        "corrupted": None,
        **unc,
        "trust_region": res.trust_region.to_dict() if res.trust_region else None,
        "population": population,
        "validation": {"parent": val["parent"], "ensemble": val["ensemble"], "members": val["members"]},
        # a pretrained model: its training is not this run's to count
        "training_flops": None, "epochs": None, "training_cost": None,
        "config": {**cfg.to_dict(), "dataset": "imagenet-val"},
        "seed": cfg.seed,
        "weights": winfo,
        "preprocess": preprocess.to_dict(),
        "data": {"root": str(images.root), "layout": images.layout, "images": len(images),
                 "classes": len(images.wnids), "fingerprint": images.fingerprint(),
                 "sizes": {"val": len(split.val), "test": len(split.test)}, "split_file": str(run / LAYOUT.split),
                 "probe": f"{len(probe_idx)} validation images drawn across classes (seed {cfg.seed})",
                 "selection": "validation split", "cache": cache_info},
        "timing": {"decode_seconds": decode_s, "parent_forward_seconds": parent_s,
                   "search_and_selection_seconds": search_s, "test_eval_seconds": eval_s,
                   "total_seconds": time.perf_counter() - t_start},
        "device": str(device),
        "precision": "float32 (images cached as uint8, normalised in the model)",
        **provenance(),
    }
    write_noisy_outputs(run, results)
    for f in sorted((ckpt / "members").glob("member_*_logits.safetensors")):
        f.unlink()  # only needed to resume this run; results.json now holds what they gave
    return results


__all__ = ["ImageNetRunConfig", "print_summary", "run_imagenet"]
