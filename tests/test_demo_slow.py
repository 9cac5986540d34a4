"""The README's demo command end to end on the full Fashion-MNIST (about 5 minutes on 2 cores)."""

import json
import os

import pytest

from evo_ensembles.cli import main

FASHION_DIR = os.path.join(os.environ.get("EVO_ENSEMBLES_DATA_ROOT", "/usr/share/datasets"), "fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason="Fashion-MNIST not installed")
def test_readme_demo(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["sparse", "--dataset", "fashion-mnist", "--model", "lenet-s", "--out", str(out),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "parent" in printed and "ensemble (4, mean)" in printed
    res = json.loads((out / "results.json").read_text())
    assert res["data"]["sizes"]["test"] == 10000
    # Jensen: the NLL of averaged probabilities never exceeds the members' mean NLL.
    mean_member_nll = sum(m["nll"] for m in res["members"]) / len(res["members"])
    assert res["ensemble"]["nll"] <= mean_member_nll + 1e-9
    # The defaults the regime study chose: independent masks at density 0.75 over all but the
    # first and last layers, and an ensemble that beats its parent on accuracy and NLL.
    assert all(m["descriptor"]["k"] is None and m["descriptor"]["density"] == 0.75
               and m["descriptor"]["dense_layers"] == ["first", "last"] for m in res["members"])
    assert res["ensemble"]["accuracy"] > res["parent"]["accuracy"]
    assert res["ensemble"]["nll"] < res["parent"]["nll"]
