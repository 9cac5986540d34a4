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


def _import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports, read from the source (every import statement,
    inside functions and ``TYPE_CHECKING`` blocks too). A name taken from a package is traced
    through that package's ``__init__`` to the module that defines it."""
    import ast
    from pathlib import Path

    import evo_ensembles

    root = Path(evo_ensembles.__file__).parent
    trees = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        trees[name] = (ast.parse(path.read_text()), path.name == "__init__.py")

    def absolute(module: str, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        is_pkg = trees[module][1]
        base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_pkg else 0)]
        return ".".join(base + ([node.module] if node.module else []))

    def direct(module: str) -> list[tuple[str, str | None]]:
        out = []
        for node in ast.walk(trees[module][0]):
            if isinstance(node, ast.Import):
                out += [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                target = absolute(module, node)
                out += [(target, a.name) for a in node.names]
        return out

    def resolve(target: str, name: str | None, seen: frozenset = frozenset()) -> set[str]:
        if name is not None and f"{target}.{name}" in trees:
            return {f"{target}.{name}"}
        if target not in trees:
            return set()
        if not trees[target][1] or name is None or (target, name) in seen:
            return {target}
        for t, n in direct(target):  # where the package's __init__ takes the name from
            if n == name and t != target:
                return resolve(t, n, seen | {(target, name)})
        return {target}

    graph = {}
    for module, (_, is_pkg) in trees.items():
        if is_pkg:
            continue
        graph[module] = {m for t, n in direct(module) for m in resolve(t, n)
                         if m != module and not trees[m][1]}
    return graph


def test_no_circular_imports_in_the_package():
    graph = _import_graph()
    assert "evo_ensembles.data.registry" in graph["evo_ensembles.data.ood"]  # the reader sees imports
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                cycles.append(path[path.index(n):] + [n] if n in path else [m, n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_lazy_top_level_name_is_shadowed_by_a_submodule_once_imported():
    # The import system binds a submodule on its package under the module's name; a lazily
    # exported function of the same name would then turn into the module (ee.combine did).
    import importlib
    import pkgutil

    import evo_ensembles as ee

    for info in pkgutil.walk_packages(ee.__path__, "evo_ensembles."):
        if info.name.split(".")[1] not in ("recipes", "cli"):
            importlib.import_module(info.name)
    for name in [*ee._TOP, *ee._LOW]:
        assert not isinstance(getattr(ee, name), type(ee)), f"ee.{name} is a module"
