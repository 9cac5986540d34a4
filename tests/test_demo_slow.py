"""The README's demo command end to end on the full Fashion-MNIST (about a minute on 2 cores)."""

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
    # Each child of a mask/anti-mask pair keeps half of the weights, disjointly.
    assert [m["descriptor"]["part"] for m in res["members"]] == [0, 1, 0, 1]
