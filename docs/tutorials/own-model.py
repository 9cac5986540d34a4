"""# An ensemble from your own model in five minutes

This tutorial starts from a network you wrote yourself, not one of the registry's models, and
turns it into three ensembles:

1. a **Sparse Subnetwork Ensemble**
   ([prune_and_tune][evo_ensembles.methods.sparse.prune_and_tune]): four children, each pruned to a
   random 75 % of the parent's weights (first and last layers kept dense) and tuned one epoch;
2. a **Noisy Subnetwork Ensemble**
   ([noisy_ensemble][evo_ensembles.methods.noisy.noisy_ensemble]): children made by adding sparse
   Gaussian noise to half of the parent's weights, σ chosen by the KL trust region (here by
   bisection, `search="bisect"`, which is quicker than the default grid over σ and density) and
   the best 4 of 8 children chosen on validation; no child is trained;
3. a **peer** on the same architecture: a Snapshot Ensemble
   ([snapshot][evo_ensembles.baselines.cyclic.snapshot]), which takes your module as a template
   (or a zero-argument function that builds one) and trains fresh copies from their own seeds.

Then it fits one temperature per ensemble on the validation split, compares test accuracy, NLL
and ECE, measures how well each one tells uniform-noise images from Fashion-MNIST (AUROC of the
max-probability score), and saves and reloads two of the ensembles.

Everything here runs on a 2-core CPU in a minute or two: 3,000 training images, a parent trained
2 epochs, children tuned 1 epoch, a Snapshot Ensemble of 4 epochs. At this size the numbers move
from seed to seed; for measured comparisons at full size see the [benchmarks](../benchmarks/index.md) (for example
[the equal-budget comparison](../benchmarks/compare.md)). What to expect in general, and the
knobs that matter, are in [Sparse Subnetwork Ensembles](../methods/sparse.md),
[Noisy Subnetwork Ensembles](../methods/noisy.md) and [peer methods](../methods/peers.md).

How to read the table it prints: `epochs` is the training each ensemble cost in all (the noisy
ensemble trains nothing beyond its parent; it costs forward passes instead: a σ search and one
validation pass per candidate child); `T` is the temperature fitted on validation; `acc %`, `NLL`
and `ECE` are test scores at `T = 1`, `T-NLL` and `T-ECE` after dividing every member's logits by
`T`; `AUROC` is how well the calibrated ensemble's max probability separates the 3,000 test images
from 1,000 uniform-noise images (0.5 is chance, 1.0 perfect). The Snapshot Ensemble trains from
fresh weights, not from the parent, so at four one-epoch cycles it is behind; it is here to show that
a peer takes your architecture the same way, not as a fair comparison (the
[equal-budget comparison](../benchmarks/compare.md) is one).

Points worth noticing in the code:

- The library never modifies your parent: `prune_and_tune` tunes copies, and `noisy_ensemble`
  perturbs the parent in place for each evaluation and restores it exactly.
- Temperatures, σ and the choice of children read the validation split (`data.val`) only; the
  test split is touched for the final numbers alone.
- A sparse child is an ordinary module (pruned weights are exactly zero), so you save it like any
  model. A noisy ensemble is saved as a small JSON file of child descriptors (seeds, σ, density)
  plus the parent's fingerprint; with the parent, the file *is* the ensemble.
- Out-of-distribution scores follow one convention: higher means "more likely OOD", so
  `u.score("max_prob")` is 1 − max probability.
"""

import copy
import tempfile
from pathlib import Path

import torch
from torch import nn

import evo_ensembles as ee
from evo_ensembles.baselines import snapshot
from evo_ensembles.train import load_tensors

torch.manual_seed(0)
out = Path(tempfile.mkdtemp())
data = ee.load_dataset("fashion-mnist", subset=3000)  # seeded train / val / test splits
print(f"train {len(data.train.y)}, val {len(data.val.y)}, test {len(data.test.y)} images; "
      f"input {data.input_shape}, {data.num_classes} classes")


class SmallCNN(nn.Module):
    """Your own architecture: any nn.Module that maps (B, 1, 28, 28) to (B, 10) logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2),   # 28 -> 26 -> 13
            nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(2),  # 13 -> 11 -> 5
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 5 * 5, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# --- 1. Train the parent ----------------------------------------------------------------------
PARENT_EPOCHS, CHILD_EPOCHS, PEER_EPOCHS = 2, 1, 4
parent = SmallCNN()
history = ee.fit(parent, data.train, ee.TrainConfig(epochs=PARENT_EPOCHS, lr=3e-3, seed=0), progress=False)
parent.eval()
print(f"parent: {sum(p.numel() for p in parent.parameters())} weights, trained {PARENT_EPOCHS} epochs "
      f"in {history.seconds:.1f} s")

# --- 2. A Sparse Subnetwork Ensemble: prune and tune -----------------------------------------
specs = ee.make_child_specs(4, density=0.75, seed=0, dense_layers=("first", "last"))
sparse = ee.prune_and_tune(parent, specs, data.train,
                           ee.TrainConfig(epochs=CHILD_EPOCHS, lr=3e-3, schedule="one-cycle"), progress=False)
child = sparse.members[0]
conv2 = child.features[3].weight
print(f"sparse: {len(sparse)} children; child 0 keeps {float((conv2 != 0).float().mean()):.1%} of conv2's "
      f"weights and {float((child.features[0].weight != 0).float().mean()):.0%} of the first layer's")

# --- 3. A Noisy Subnetwork Ensemble: no training ---------------------------------------------
res = ee.noisy_ensemble(parent, data.val.x, data.val.y, target_kl=0.02, density=0.5, search="bisect",
                        popsize=8, top_k=4, seed=0, progress=False)
noisy = res.ensemble
print(f"noisy: sigma {res.sigma:.4g} from the KL trust region ({len(res.trust_region.grid)} sigmas tried); "
      f"kept children {res.selected} of a population of {len(res.population)}")

# --- 4. A peer on the same architecture: Snapshot Ensemble -----------------------------------
peer = snapshot(SmallCNN(), data, ee.TrainConfig(epochs=PEER_EPOCHS, lr=3e-3, seed=0), members=4)
print(f"snapshot: {len(peer.ensemble)} members from one {PEER_EPOCHS}-epoch run of fresh weights "
      f"(epochs counted: {peer.epochs:g}, {peer.seconds:.1f} s)")

# --- 5. Temperatures on validation, scores on test -------------------------------------------
single = ee.Ensemble([parent])  # the parent alone, scored the same way
ensembles = {"parent": single, "sparse": sparse, "noisy": noisy, "snapshot": peer.ensemble}
epochs = {"parent": PARENT_EPOCHS, "sparse": PARENT_EPOCHS + len(sparse) * CHILD_EPOCHS,  # training epochs
          "noisy": PARENT_EPOCHS, "snapshot": peer.epochs}
# uniform noise images, normalised like the data (an easy OOD set made on the spot)
noise = (torch.rand(1000, *data.input_shape) - torch.tensor(data.mean).view(-1, 1, 1)) \
    / torch.tensor(data.std).view(-1, 1, 1)

print()
print(f"{'':9} {'epochs':>6} {'T':>5} {'acc %':>6} {'NLL':>6} {'ECE':>6} | {'T-NLL':>6} {'T-ECE':>6} | {'AUROC':>6}")
for name, ens in ensembles.items():
    t = ens.fit_temperature(data.val.x, data.val.y).temperature      # validation only
    z_test = ens.member_logits(data.test.x)                          # (M, B, C): one pass per member
    z_noise = ens.member_logits(noise)
    raw = ee.classification_metrics(ee.tempered_probs(z_test, 1.0), data.test.y)
    cal = ee.classification_metrics(ee.tempered_probs(z_test, t), data.test.y)
    ind = ee.uncertainty(z_test, temperature=t).score("max_prob")    # higher = more likely OOD
    ood = ee.uncertainty(z_noise, temperature=t).score("max_prob")
    print(f"{name:9} {epochs[name]:6g} {t:5.2f} {100 * raw['accuracy']:6.2f} {raw['nll']:6.3f} {raw['ece']:6.3f} | "
          f"{cal['nll']:6.3f} {cal['ece']:6.3f} | {ee.auroc(ind, ood):6.3f}")
    if name == "sparse":
        probs = torch.softmax(z_test, -1)

print(f"\nsparse children disagree on {ee.diversity(probs)['disagreement']:.1%} of test images")

# --- 6. Save and reload ----------------------------------------------------------------------
# Sparse: each child is a plain module; keep its descriptor in the checkpoint's header.
for i, (member, spec) in enumerate(zip(sparse.members, specs, strict=True)):
    ee.save_model(out / f"child_{i}.safetensors", member, {"descriptor": spec.to_dict()})
reloaded = []
for i in range(len(specs)):
    net = SmallCNN()
    net.load_state_dict(load_tensors(out / f"child_{i}.safetensors"))
    reloaded.append(net.eval())
sparse_again = ee.Ensemble(reloaded, parent=parent, temperature=sparse.temperature)
x = data.test.x[:500]
same = torch.allclose(sparse_again.predict_proba(x, calibrated=True), sparse.predict_proba(x, calibrated=True))
print(f"sparse reloaded from {len(reloaded)} checkpoints: identical predictions: {same}")

# Noisy: a JSON file of descriptors (and the fitted temperature); the parent is saved separately.
path = noisy.save(out / "noisy.json")
parent_copy = copy.deepcopy(parent)  # e.g. the parent loaded again in another process
noisy_again = ee.NoisyEnsemble.load(path, parent_copy)
same = torch.allclose(noisy_again.predict_proba(x, calibrated=True), noisy.predict_proba(x, calibrated=True))
print(f"noisy reloaded from {path.name} ({path.stat().st_size} bytes): identical predictions: {same}")
