"""# Reading a run with analyze

A run directory is the unit everything else reads: `results.json` has the numbers, `config.json`
the settings, `checkpoints/` the networks. This tutorial makes a tiny Sparse Subnetwork Ensemble
run, asks `evo-ensembles analyze` why its members differ, and reads both the run and the
analysis back in Python. From a shell the same steps are:

```bash
evo-ensembles sparse --subset 2000 --model lenet-5 --lr 0.003 --parent-epochs 1 --children 2 \\
    --child-epochs 1 --corrupted-examples 100 --threads 1 --quiet --out runs/tiny
evo-ensembles analyze runs/tiny --parts tsne,hashes --steps 32 --images 2 --threads 1 --quiet
```

The run is far too small to be good (one epoch of LeNet-5 on 2,000 images); it is here to have
something to look at in a minute. `--corrupted-examples 100` scores each of the 115
Fashion-MNIST-C cells (23 corruption types × 5 severities) on 100 images instead of 1,000, where
the corrupted set is installed; `--threads 1` avoids two torch threads fighting over a small CPU.

What `analyze` does (every part is resumable and keeps what it finished):

- `tsne`: a t-SNE (scikit-learn) of every member's output vectors on `--examples` test images,
  coloured by class, by prediction and by mistake (`analysis/figures/tsne.png`);
- `hashes`: perceptual hashes (average, perceptual, difference, wavelet, colour; imagehash) and
  RMSE between the members' feature visualisations and SmoothGrad saliency maps, as M × M
  matrices with the parent first (the summary numbers average the members' pairs only, parent
  left out). It makes the feature visualisations (`--steps` Adam steps on
  one unit, `--layer`/`--channel`) and the saliency maps (`--images` test images) it needs, so
  those figures appear too. `--steps 32` keeps it fast; the default is 1,024 steps.
- `features`, `saliency` and `landscape` (loss along two random directions around the parent,
  a pruned child and the tuned child) are the other parts; they are left out here for time.

[`ee.load_run`][evo_ensembles.analysis.runs.open_run] opens any finished run directory
(`sparse`, `stochastic`, `noisy`, `imagenet`, `baseline`, `rl evaluate`): `run.results` and
`run.config` are the JSON files as dicts, `run.parent()` and `run.member(i)` rebuild the
networks, `run.ensemble()` gives the ensemble with its fitted temperature, and `run.data()` the
exact splits the run used. The analysis record, `analysis/analysis.json`, is plain JSON beside it.
The keys of `results.json` are documented in the [results.json schema](../reference/results.md);
the parts of `analyze` in the [analysis guide](../guides/analysis.md), with one figure of each kind
from a full-size run in the [analysis gallery](../benchmarks/analyze_gallery.md).
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import evo_ensembles as ee

out = Path(tempfile.mkdtemp())
run_dir = out / "tiny"
cli = [sys.executable, "-m", "evo_ensembles.cli"]


def run(*args: str) -> str:
    proc = subprocess.run([*cli, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return proc.stdout


# --- 1. A tiny sparse run --------------------------------------------------------------------
print(run("sparse", "--subset", "2000", "--model", "lenet-5", "--lr", "0.003", "--parent-epochs", "1",
          "--children", "2", "--child-epochs", "1", "--corrupted-examples", "100", "--threads", "1", "--quiet",
          "--out", str(run_dir)).strip())
print("run directory:", sorted(p.name for p in run_dir.iterdir()))

# --- 2. analyze: t-SNE and hashes ------------------------------------------------------------
print(run("analyze", str(run_dir), "--parts", "tsne,hashes", "--steps", "32", "--images", "2",
          "--threads", "1", "--quiet").strip())
print("analysis:", sorted(str(p.relative_to(run_dir / "analysis")) for p in (run_dir / "analysis").rglob("*.png")))

# --- 3. The run back in Python ---------------------------------------------------------------
r = ee.load_run(run_dir)
print("\n", r, sep="")
res = r.results
print("results.json keys:", ", ".join(res))
print(f"parent accuracy {res['parent']['accuracy']:.4f}, ensemble {res['ensemble']['accuracy']:.4f} "
      f"({res['ensemble']['size']} members); NLL {res['parent']['nll']:.3f} -> {res['ensemble']['nll']:.3f}")
print(f"members disagree on {res['diversity']['disagreement']:.1%} of test images "
      f"(output correlation {res['diversity']['correlation']:.4f})")
cal = res["calibrated"]
print(f"temperature of the ensemble, fit on {cal['validation_examples']} validation images: "
      f"{cal['ensemble']['temperature']:.3f}")
print("config: model", r.config["model"], "| children", r.config["children"], "| density", r.config["density"],
      "| commit", res["commit"][:7], "| code_dirty", res["code_dirty"])

# the networks and the data, rebuilt from the directory
data = r.data()
x, y = data.test.x[:500], data.test.y[:500]
probs = r.ensemble().predict_proba(x, calibrated=True)
print(f"rebuilt ensemble, calibrated, on the first 500 test images: "
      f"{ee.classification_metrics(probs, y)['accuracy']:.4f} accuracy")

# --- 4. The analysis record --------------------------------------------------------------------
a = json.loads((run_dir / "analysis" / "analysis.json").read_text())
print("\nanalysis.json:", {k: a[k] for k in ("kind", "method", "members")}, "parts:", list(a["parts"]))
print("t-SNE:", a["parts"]["tsne"]["result"])
h = a["parts"]["hashes"]["result"]
print("hash models (rows and columns of each matrix):", h["models"])
for what in ("features", "saliency"):
    means = ", ".join(f"{k} {v:.3g}" for k, v in h[what].items())
    print(f"mean distance between the members' {what} (parent left out): {means}")
print("perceptual-hash distances between feature visualisations:")
for name, row in zip(h["models"], h["matrices"]["features"]["perceptual"], strict=True):
    print(f"  {name:8}", row)
