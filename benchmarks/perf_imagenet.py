"""Speed of the ``imagenet`` run (issue #14, item 5), ratios measured side by side in one run.

  children   evaluating N noisy children from the uint8 cache vs N parent forward passes on
             the same tensors (target ≤ 1.10: perturbing and restoring in place is cheap)
  whole run  the whole 16-child run (split, decode, σ search, population, test evaluation)
             vs one decode pass + 17 parent forward passes over all images (target ≤ 1.5)

On this machine's CPU with generated JPEGs (``--images`` of ``--size`` pixels; noise
JPEGs decode slower than photographs) and a small torchvision model at random init; with
``--data`` a real ImageNet-layout folder is used instead. On a GPU it also reports images/s.
The split keeps the paper's proportions (1:4 validation:test, a probe of 10% of validation).

    .venv/bin/python benchmarks/perf_imagenet.py --threads 2
    .venv/bin/python benchmarks/perf_imagenet.py --device cuda --models resnet18,resnet50 --images 5000
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import footer, header, save
from PIL import Image

from evo_ensembles.config.imagenet import ImageNetRunConfig
from evo_ensembles.data.image_cache import Normalize, Preprocess, cached_images
from evo_ensembles.data.imagenet import find_imagenet_val
from evo_ensembles.devices import resolve_device, set_threads
from evo_ensembles.ensemble import predict_probs
from evo_ensembles.es import NoiseSampling, make_noisy_specs
from evo_ensembles.methods.noisy import NoisyEnsemble
from evo_ensembles.models.torchvision_models import pretrained_torchvision_model
from evo_ensembles.recipes.imagenet import run_imagenet
from evo_ensembles.reporting import markdown_table


def make_images(root: Path, classes: int, per_class: int, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    for c in range(classes):
        d = root / f"n{c:08d}"
        d.mkdir(parents=True)
        for i in range(per_class):
            # Smooth random images (closer to photographs than white noise when decoding).
            small = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
            Image.fromarray(small).resize(size, Image.BILINEAR).save(d / f"ILSVRC2012_val_{c * per_class + i:08d}.JPEG",
                                                                     quality=90)


def timed(fn, device: torch.device) -> float:
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def measure(name: str, images, data: Path, work: Path, args, device: torch.device) -> dict:
    """Decode pass, parent pass, N children and the whole run for one model."""
    net, _ = pretrained_torchvision_model(name, None, num_classes=len(images.wnids))
    pre = Preprocess.paper()
    files = list(images.files)
    t_decode = timed(lambda: cached_images(files, pre, work / f"cache_{name}", workers=args.loader_workers,
                                           batch_size=args.batch_size, progress=False), device)
    x, _ = cached_images(files, pre, work / f"cache_{name}", progress=False)
    parent = Normalize(net, pre.mean, pre.std).to(device).eval()
    ens = NoisyEnsemble(parent, make_noisy_specs(args.children, seed=0,
                                                 sampling=NoiseSampling(sigma=0.002, density=0.5)))
    fwd, kids = [], []
    for rep in range(args.reps + 1):  # the first round warms up
        f = timed(lambda: predict_probs(parent, x, batch_size=args.batch_size), device)
        k = timed(lambda: ens.member_probs(x, batch_size=args.batch_size, with_parent=False), device)
        if rep:
            fwd.append(f)
            kids.append(k)
    t_fwd, t_kids = statistics.median(fwd), statistics.median(kids)
    per_class = int(min(np.bincount(images.labels)))
    val_pc = max(1, per_class // 5)
    cfg = ImageNetRunConfig(data=str(data), model=name, weights="none", preprocess="paper",
                            val_per_class=val_pc, test_per_class=per_class - val_pc,
                            probe_size=max(1, len(images.wnids) * val_pc // 10), population=args.children,
                            top_k=args.children // 2, loader_workers=args.loader_workers,
                            batch_size=args.batch_size, device=str(device), threads=args.threads,
                            cache_dir=str(work / f"cache_run_{name}"))
    t_run = timed(lambda: run_imagenet(cfg, work / f"run_{name}", progress=False), device)
    return {"model": name, "images": len(images), "device": str(device), "decode_s": t_decode,
            "parent_forward_s": t_fwd, "children_s": t_kids, "run_s": t_run,
            "children_ratio": t_kids / (args.children * t_fwd),
            "run_ratio": t_run / (t_decode + (args.children + 1) * t_fwd), "images_per_s": len(images) / t_fwd}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="an ImageNet-layout folder (default: generated images)")
    ap.add_argument("--models", default="mobilenet_v3_small")
    ap.add_argument("--images", type=int, default=500, help="generated images (10 per class)")
    ap.add_argument("--size", type=int, nargs=2, default=[500, 375])
    ap.add_argument("--children", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--loader-workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    set_threads(args.threads)
    device = resolve_device(args.device)
    work = Path(tempfile.mkdtemp(prefix="perf_imagenet_"))
    rows, table = [], []
    try:
        data = Path(args.data) if args.data else work / "val"
        if not args.data:
            make_images(data, args.images // 10, 10, tuple(args.size))
        images = find_imagenet_val(data)
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            row = measure(name, images, data, work, args, device)
            rows.append(row)
            table.append([name, len(images), f"{row['decode_s']:.1f}", f"{row['parent_forward_s']:.2f}",
                          f"{row['images_per_s']:.0f}", f"{row['children_s']:.1f}", f"{row['children_ratio']:.3f}",
                          f"{row['run_s']:.1f}", f"{row['run_ratio']:.3f}"])
            print(table[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info = header()
    md = "\n\n".join([
        "# Speed of the imagenet run: children from the cache, and the whole run",
        f"{'generated ' + 'x'.join(map(str, args.size)) + ' JPEGs' if not args.data else args.data}; device "
        f"{device}, {torch.get_num_threads()} threads; {args.children} children; medians of {args.reps} "
        "rounds. Targets: children ≤ 1.10 × N parent passes; whole run ≤ 1.5 × (decode + 17 passes).",
        markdown_table(["model", "images", "decode s", "parent pass s", "images/s", f"{args.children} children s",
                        "children / N passes", "whole run s", "run / (decode + 17 passes)"], table),
        *footer(info),
    ]) + "\n"
    save("perf_imagenet", {**info, "args": vars(args), "rows": rows}, md)


if __name__ == "__main__":
    main()
