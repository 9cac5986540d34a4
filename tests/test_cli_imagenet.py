"""`evo-ensembles imagenet` end to end on a tiny ImageFolder of generated JPEGs with small
torchvision models at random init, and the bad inputs it must refuse in one line."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from evo_ensembles.cli import main
from evo_ensembles.errors import UserError
from evo_ensembles.models.torchvision_models import pretrained_torchvision_model, weights_enum

from .data.test_imagenet import image_folder

SMALL = ["--val-per-class", "1", "--test-per-class", "2", "--population", "4", "--top-k", "2",
         "--probe-children", "1", "--sigma-grid", "0.001,0.01", "--loader-workers", "0", "--batch-size", "8",
         "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return image_folder(tmp_path_factory.mktemp("imagenet") / "val", per_class=3)


def run(args, capsys) -> tuple[int, str]:
    code = main(["imagenet", *args])
    return code, capsys.readouterr().err


def test_a_whole_run_then_a_second_model_on_the_same_split_decodes_nothing(tree, tmp_path, capsys):
    out = tmp_path / "mobilenet"
    code, err = run(["--data", str(tree), "--model", "mobilenet_v3_small", "--weights", "none",
                     "--cache-dir", str(tmp_path / "cache"), "--out", str(out), *SMALL], capsys)
    assert code == 0, err
    r = json.loads((out / "results.json").read_text())
    assert r["data"]["sizes"] == {"val": 3, "test": 6} and r["data"]["cache"]["decoded_now"]
    assert r["ensemble"]["size"] == 2 and len(r["population"]) == 4
    assert r["preprocess"]["source"].endswith("transforms()") and r["weights"]["weights"] == "random init"
    assert "| mobilenet_v3_small |" in (out / "report.md").read_text()
    assert (out / "ensemble.json").is_file() and not list((out / "checkpoints" / "members").glob("*"))
    # Another model, the first run's split, the shared cache: the same images, nothing decoded.
    out2 = tmp_path / "squeezenet"
    code, err = run(["--data", str(tree), "--model", "squeezenet1_1", "--weights", "none", "--split",
                     str(out / "split.json"), "--cache-dir", str(tmp_path / "cache"), "--out", str(out2), *SMALL],
                    capsys)
    assert code == 0, err
    r2 = json.loads((out2 / "results.json").read_text())
    assert not r2["data"]["cache"]["decoded_now"]
    assert json.loads((out2 / "split.json").read_text()) == json.loads((out / "split.json").read_text())
    # --preprocess paper is recorded as such; its geometry (256 → 224, bilinear) is the weights',
    # so it shares their cache (normalisation runs in the model, not in the cache).
    out3 = tmp_path / "paper"
    code, err = run(["--data", str(tree), "--model", "squeezenet1_1", "--weights", "none", "--preprocess",
                     "paper", "--cache-dir", str(tmp_path / "cache"), "--out", str(out3), *SMALL], capsys)
    assert code == 0, err
    r3 = json.loads((out3 / "results.json").read_text())
    assert r3["preprocess"] == {**r3["preprocess"], "resize": 256, "crop": 224, "source": "paper"}
    assert not r3["data"]["cache"]["decoded_now"]


def test_a_rerun_reuses_the_parent_probabilities_and_children(tree, tmp_path, capsys):
    args = ["--data", str(tree), "--model", "squeezenet1_1", "--weights", "none", "--out", str(tmp_path / "r"),
            *SMALL]
    assert run(args, capsys)[0] == 0
    first = json.loads((tmp_path / "r" / "results.json").read_text())
    assert run(args, capsys)[0] == 0
    second = json.loads((tmp_path / "r" / "results.json").read_text())
    assert second["ensemble"] == first["ensemble"] and second["sigma"] == first["sigma"]
    assert not second["data"]["cache"]["decoded_now"]


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_BY_PICKLE",))


def _weights_case(case: str, tmp_path, tree):
    if case == "missing data":
        return ["--data", str(tmp_path / "nowhere"), "--model", "squeezenet1_1", "--weights", "none"]
    if case == "partial data":  # 3 images per class; 1 + 5 asked for
        return ["--data", str(tree), "--model", "squeezenet1_1", "--weights", "none"]
    if case == "other architecture":
        net, _ = pretrained_torchvision_model("squeezenet1_1", None, num_classes=3)
        torch.save(net.state_dict(), tmp_path / "w.pth")
        return ["--data", str(tree), "--model", "mobilenet_v3_small", "--weights", str(tmp_path / "w.pth")]
    if case == "pickle":
        with open(tmp_path / "evil.pth", "wb") as f:
            pickle.dump({"conv.weight": _RunsCode()}, f)
        return ["--data", str(tree), "--model", "squeezenet1_1", "--weights", str(tmp_path / "evil.pth")]
    if case == "split of other data":
        other = image_folder(tmp_path / "other", per_class=4)
        from evo_ensembles.data.imagenet import find_imagenet_val, make_split, save_split

        imgs = find_imagenet_val(other)
        save_split(tmp_path / "split.json", make_split(imgs, val_per_class=1, test_per_class=2), imgs)
        return ["--data", str(tree), "--model", "squeezenet1_1", "--weights", "none", "--split",
                str(tmp_path / "split.json")]
    if case == "1000-class weights on 3 classes":
        net, _ = pretrained_torchvision_model("squeezenet1_1", None)
        torch.save(net.state_dict(), tmp_path / "w1000.pth")
        return ["--data", str(tree), "--model", "squeezenet1_1", "--weights", str(tmp_path / "w1000.pth")]
    if case == "unknown weights entry":
        return ["--data", str(tree), "--model", "resnet18", "--weights", "IMAGENET9K_V9"]
    if case == "an OOD set named":
        return ["--data", str(tree), "--model", "squeezenet1_1", "--weights", "none", "--ood-sets", "digits"]
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing data", "partial data", "other architecture", "pickle",
                                  "split of other data", "1000-class weights on 3 classes",
                                  "unknown weights entry", "an OOD set named"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, tree, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = _weights_case(case, tmp_path, tree)
    out = tmp_path / "out"
    extra = ["--test-per-class", "5"] if case == "partial data" else []
    code, err = run([*args, "--out", str(out), *SMALL, *extra], capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("evo-ensembles: error:")
    assert not out.exists()
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


def test_safetensors_weights_load_and_named_entries_resolve(tmp_path):
    from safetensors.torch import save_file

    net, _ = pretrained_torchvision_model("squeezenet1_1", None, num_classes=3)
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    loaded, info = pretrained_torchvision_model("squeezenet1_1", str(tmp_path / "w.safetensors"))
    assert info["num_classes"] == 3 and info["weights"].endswith("w.safetensors")
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert str(weights_enum("resnet18", "ResNet18_Weights.IMAGENET1K_V1")) == "ResNet18_Weights.IMAGENET1K_V1"
    with pytest.raises(UserError, match="choose DEFAULT"):
        weights_enum("resnet18", "NOPE")


def test_without_a_network_named_weights_say_where_to_put_the_file(tree, tmp_path, capsys, monkeypatch):
    """torchvision's download fails as it does offline; the user is told the URL and the path."""
    import urllib.error

    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    code, err = run(["--data", str(tree), "--model", "squeezenet1_1", "--weights", "DEFAULT", "--out",
                     str(tmp_path / "o"), *SMALL], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "download https://download.pytorch.org/models/squeezenet1_1" in err
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in err and not (tmp_path / "o").exists()
