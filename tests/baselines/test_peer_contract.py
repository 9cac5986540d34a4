"""Every peer keeps the one contract: a BaselineResult whose ensemble speaks the member
interface, whose NLL is that of the averaged probabilities, with FLOPs and epochs counted;
and the ``baseline`` command runs each with the results.json schema of the other methods."""

import json

import pytest
import torch

from evo_ensembles.baselines import PEERS, BaselineResult, get_peer
from evo_ensembles.baselines.storage import ensemble_state, load_peer, rebuild_peer
from evo_ensembles.cli import main
from evo_ensembles.config.baseline import BaselineRunConfig
from evo_ensembles.data import ArrayData, DataSplits
from evo_ensembles.errors import UserError
from evo_ensembles.metrics import classification_metrics
from evo_ensembles.results import BaselineResults
from evo_ensembles.train import TrainConfig

OPTIONS = {"snapshot": {"members": 3}, "fge": {"members": 1, "cycle_epochs": 2}, "bagging": {"members": 2},
           "deep-ensemble": {"members": 2}, "dst": {"members": 2, "update_interval": 2},
           "edst": {"members": 2, "update_interval": 2}, "treenet": {"members": 2},
           "batchensemble": {"members": 2}, "mimo": {"members": 2}, "mc-dropout": {"passes": 2},
           "mothernets": {"members": 2}}


def splits(shape=(1, 16, 16)) -> DataSplits:
    g = torch.Generator().manual_seed(0)

    def part(k):
        x = torch.randn(k, *shape, generator=g)
        return ArrayData(x, (x.mean((1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 0).long())

    return DataSplits("random", part(64), part(32), part(32), 3, shape, (0.0,), (1.0,))


@pytest.mark.parametrize("name", list(PEERS))
def test_every_peer_returns_members_scored_on_averaged_probabilities(name):
    data = splits()
    model = "mlp-16" if name == "mothernets" else "lenet-5"
    res = get_peer(name)(model, data, TrainConfig(epochs=3, batch_size=16, lr=3e-3), **OPTIONS.get(name, {}),
                         progress=False)
    assert isinstance(res, BaselineResult) and res.epochs > 0 and res.training_flops > 0
    probs = res.ensemble.member_probs(data.test.x)
    assert probs.shape == (len(res.ensemble), 32, 3)
    torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:2]))
    out = res.ensemble.evaluate(data.test.x, data.test.y)
    assert out["ensemble"] == classification_metrics(probs.mean(0), data.test.y)  # never averaged logits
    if len(res.ensemble) > 1:
        assert not torch.allclose(probs[0], probs[1])  # members are not copies
    # stored and rebuilt from its record, it is the same ensemble
    opts = {"members": len(res.ensemble), **OPTIONS.get(name, {})}
    if name in ("independent", "dropout"):
        opts = {}
    if name == "mc-dropout":
        opts = {"passes": 2}
    record = {"method": name, "model": model, "input_shape": [1, 16, 16], "num_classes": 3, "options": opts,
              "members": res.members, "seed": 0}
    back = rebuild_peer(record, ensemble_state(res.ensemble))
    torch.testing.assert_close(back.member_probs(data.test.x), probs, rtol=0, atol=0)


def test_baseline_command_writes_the_shared_schema_with_flops_and_epochs(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["baseline", "--method", "snapshot", "--model", "lenet-5", "--epochs", "2", "--members", "2",
                 "--subset", "256", "--out", str(out), "--quiet"])
    assert code == 0 and "Snapshot Ensemble (2)" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert BaselineResults.__required_keys__ <= set(results)
    assert results["training_flops"] == pytest.approx(1.0) and results["epochs"] == 2
    assert results["training_cost"]["reference_epochs"] == 2 and results["parent"] is None
    assert len(results["members"]) == 2 and "lr" in results["members"][0]
    # each member is scored on validation too, so a collapsed member is seen without the test split
    assert [set(m) >= {"accuracy", "nll", "ece"} for m in results["validation"]["members"]] == [True, True]
    assert (out / "report.md").is_file() and (out / "figures" / "member_accuracy.png").is_file()
    ens, record = load_peer(out / "checkpoints" / "ensemble.safetensors")
    assert record["method"] == "snapshot" and len(ens) == 2
    # A finished run with the same settings is reported again, not retrained.
    mtime = (out / "results.json").stat().st_mtime_ns
    assert main(["baseline", "--method", "snapshot", "--model", "lenet-5", "--epochs", "2", "--members", "2",
                 "--subset", "256", "--out", str(out), "--quiet"]) == 0
    assert (out / "results.json").stat().st_mtime_ns == mtime
    # ... and the same directory refuses a run with other settings instead of mixing stages.
    assert main(["baseline", "--method", "snapshot", "--model", "lenet-5", "--epochs", "4", "--members", "2",
                 "--subset", "256", "--out", str(out), "--quiet"]) == 2
    assert "epochs" in capsys.readouterr().err


def test_a_multi_stage_peer_skips_its_finished_stages_on_a_rerun(tmp_path):
    from evo_ensembles.baselines import deep_ensemble

    data, cfg = splits(), TrainConfig(epochs=2, batch_size=16, lr=3e-3)
    first = deep_ensemble("lenet-5", data, cfg, members=2, workdir=tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == ["member_0.safetensors", "member_1.safetensors"]
    again = deep_ensemble("lenet-5", data, cfg, members=2, workdir=tmp_path, progress=False)
    assert again.seconds == 0.0  # nothing retrained
    torch.testing.assert_close(again.ensemble.member_probs(data.test.x), first.ensemble.member_probs(data.test.x),
                               rtol=0, atol=0)


def test_baseline_config_refuses_settings_that_do_not_fit_the_method():
    with pytest.raises(UserError, match="multiple of --members"):
        BaselineRunConfig(method="snapshot", epochs=6, members=4)
    with pytest.raises(UserError, match="one model"):
        BaselineRunConfig(method="independent", members=3)
    with pytest.raises(UserError, match="widens MLPs"):
        BaselineRunConfig(method="mothernets", model="lenet-s")
    with pytest.raises(UserError, match="even"):
        BaselineRunConfig(method="fge", cycle_epochs=3)
    cfg = BaselineRunConfig(method="deep-ensemble", epochs=16)
    assert cfg.members == 4 and cfg.method_train_config().epochs == 4  # the budget split over members
    assert BaselineRunConfig(method="dst").density == 0.2 and BaselineRunConfig(method="edst").density == 0.1
    assert BaselineRunConfig(method="mc-dropout", members=5).method_options() == {"passes": 5}
