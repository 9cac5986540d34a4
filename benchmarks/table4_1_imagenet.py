"""Table 4.1 (ImageNet): the noisy ensemble of each torchvision model, parent → top 8 of 16.

Every model runs through the library's ``imagenet`` run (``run_imagenet``) on one split
(drawn once, written to OUT/split.json) and one decoded-image cache (OUT/cache), each
in its own run directory OUT/<model>/, so the table resumes per model: a finished model is
read back, an interrupted one resumes inside its run. Needs a local ImageNet val copy (see
the README's ImageNet section) and, at the paper's scale, a GPU.

    .venv/bin/python benchmarks/table4_1_imagenet.py --data /data/imagenet/val
    .venv/bin/python benchmarks/table4_1_imagenet.py --data /data/imagenet/val --models resnet18,squeezenet1_1
    # smoke on a tiny tree (random init, few images):
    .venv/bin/python benchmarks/table4_1_imagenet.py --data tiny/ --weights none --models squeezenet1_1 \\
        --name table4_1_smoke --set val_per_class=1 test_per_class=2 population=4 top_k=2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import footer, header, save

from evo_ensembles.config.imagenet import ImageNetRunConfig
from evo_ensembles.data.imagenet import find_imagenet_val, make_split, save_split
from evo_ensembles.recipes.imagenet import run_imagenet
from evo_ensembles.recipes.noisy import TABLE_HEADERS, table_row
from evo_ensembles.reporting import markdown_table
from evo_ensembles.run_folder import LAYOUT

PAPER_MODELS = ["alexnet", "densenet121", "inception_v3", "mobilenet_v2", "resnet18", "resnext50_32x4d",
                "shufflenet_v2_x1_0", "squeezenet1_1", "vgg16", "wide_resnet50_2"]


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--models", default=",".join(PAPER_MODELS))
    ap.add_argument("--weights", default="DEFAULT")
    ap.add_argument("--preprocess", default="paper", choices=["paper", "weights"])
    ap.add_argument("--out", default=None, help="default benchmarks/runs/<name>")
    ap.add_argument("--name", default="table4_1_imagenet")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="other ImageNetRunConfig fields, e.g. device=cuda loader_workers=8")
    args = ap.parse_args()
    out = Path(args.out or Path(__file__).resolve().parent / "runs" / args.name)
    out.mkdir(parents=True, exist_ok=True)
    extra = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    base = {"data": args.data, "weights": args.weights, "preprocess": args.preprocess, "seed": args.seed,
            "cache_dir": str(out / "cache"), **extra}
    split_file = out / LAYOUT.split
    if not split_file.is_file():  # one split for the whole table
        probe = ImageNetRunConfig(model="resnet18", **base)
        images = find_imagenet_val(args.data)
        save_split(split_file, make_split(images, val_per_class=probe.val_per_class,
                                          test_per_class=probe.test_per_class, seed=args.seed), images)
    rows, table = [], []
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        cfg = ImageNetRunConfig(model=model, split=str(split_file), **base)
        run_dir = out / model
        done = run_dir / LAYOUT.results
        results = json.loads(done.read_text()) if done.is_file() else None
        wanted = json.loads(json.dumps({**cfg.to_dict(), "dataset": "imagenet-val"}))
        if results is None or results["config"] != wanted:
            results = run_imagenet(cfg, run_dir)
        rows.append({"model": model, "parent": results["parent"], "ensemble": results["ensemble"],
                     "sigma": results["sigma"], "mean_kl": results["mean_kl"], "weights": results["weights"],
                     "preprocess": results["preprocess"], "timing": results["timing"], "device": results["device"]})
        table.append(table_row(results))
        print(table[-1], flush=True)
    info = header()
    first = rows[0] if rows else {}
    md = "\n\n".join([
        "# Table 4.1 (ImageNet): parent → noisy ensemble (top 8 of 16)",
        f"ILSVRC-2012 val at {args.data}: one seeded split for all models ({split_file.name}); weights "
        f"{args.weights}; preprocessing {args.preprocess}; σ from the KL trust region; children chosen on "
        "validation; Acc in %, NLL and ECE on the test part. Device "
        f"{first.get('device', '?')}. The paper's numbers are in SPEC §2.",
        markdown_table(TABLE_HEADERS, table),
        *footer(info),
    ]) + "\n"
    save(args.name, {**info, "args": vars(args), "rows": rows}, md)


if __name__ == "__main__":
    main()
