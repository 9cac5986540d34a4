"""The package imports like a library: light at the top, each extra's heavy modules on use."""

import json
import subprocess
import sys

import pytest

HEAVY = ["torch", "torchvision", "evotorch", "ray", "stable_baselines3", "gym", "gymnasium", "procgen",
         "matplotlib", "pandas", "minatar", "minigrid", "pygame"]


def loaded_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("statement,allowed", [
    ("import evo_ensembles", set()),
    ("import evo_ensembles; evo_ensembles.__version__", set()),
    ("import evo_ensembles.cli", {"torch"}),  # the CLI's --help builds every command's flags
    ("from evo_ensembles import prune_and_tune, noisy_ensemble, ChildSpec", {"torch"}),
    ("import evo_ensembles.config.rl", {"torch"}),
    ("from evo_ensembles import load_dataset, build_model", {"torch", "torchvision"}),
    ("import evo_ensembles.es.evotorch_bridge",  # the [es] extra
     {"torch", "evotorch", "ray", "gymnasium", "matplotlib", "pandas"}),
    ("import evo_ensembles.agents",  # the [rl] extra
     {"torch", "stable_baselines3", "gym", "gymnasium"}),
])
def test_heavy_modules_load_only_where_needed(statement, allowed):
    loaded = loaded_after(statement)
    assert loaded <= allowed, f"{statement!r} loaded {sorted(loaded - allowed)}"


def test_every_top_level_name_resolves_and_all_is_sorted():
    import evo_ensembles as ee

    assert ee.__all__ == ["__version__", *sorted(n for n in ee.__all__ if n != "__version__")]
    for name in ee.__all__:
        assert getattr(ee, name) is not None
    with pytest.raises(AttributeError):
        ee.no_such_name  # noqa: B018
