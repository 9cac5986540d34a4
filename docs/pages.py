"""The generators of the site's generated pages (called by ``docs/gen_pages.py`` at build time,
and by the tests). Each returns Markdown built from the code or from committed results, so
no page of this kind can drift from what it documents.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "evo_ensembles"
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"

# Benchmark stems -> the paper's table beside ours (docs/paper/<key>.md, copied from the
# dissertation's tables in SPEC.md).
PAPER = {
    "table4_1": "table4_1",
    "procgen_paper_starpilot": "table4_2",
    "procgen_paper_starpilot_levels200": "table4_2",
    "procgen_smoke_starpilot": "table4_2",
    "table5_1": "table5_1",
    "table5_1_noaug": "table5_1",
    "table5_2": "table5_2",
    "table5_2_tune3": "table5_2",
    "table5_2_resnet8": "table5_2",
    "table5_2_resnet8_tune3": "table5_2",
    "compare": "table5_2",
    "table6_1": "table6_1",
    "table6_1_paper": "table6_1",
    "table7_1": "table7_1",
}

# API reference: page -> (title, modules under evo_ensembles, or packages whose every module is shown).
API = {
    "methods": ("Methods", ["methods"]),
    "ensembles": ("Ensembles and combining", ["ensemble", "combining"]),
    "uncertainty": ("Metrics, calibration, uncertainty, scoring",
                    ["metrics", "calibration", "input_scores", "scoring"]),
    "subnet": ("Subnetworks (masks, noise, descriptors)", ["subnet"]),
    "es": ("Evolution strategies", ["es"]),
    "train": ("Training", ["train"]),
    "data": ("Data", ["data"]),
    "models": ("Models", ["models"]),
    "baselines": ("Peer methods", ["baselines"]),
    "rl": ("Reinforcement learning", ["agents", "envs"]),
    "analysis": ("Analysis", ["analysis"]),
    "runs": ("Runs, configs and recipes", ["run_folder", "results", "config", "recipes", "reporting",
                                           "provenance"]),
    "support": ("Checks, errors, devices, FLOPs", ["checks", "errors", "devices", "flops", "schema"]),
}


# --- CLI reference ---------------------------------------------------------------------------------


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _flags_table(parser: argparse.ArgumentParser) -> list[str]:
    formatter = parser._get_formatter()
    lines: list[str] = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions
                   if a.option_strings and not isinstance(a, argparse._HelpAction | argparse._VersionAction)]
        if not actions:
            continue
        if group.title not in ("options", "optional arguments"):
            lines += ["", f"**{group.title}**", ""]
        else:
            lines += [""]
        lines += ["| flag | choices | help (and default, as the config declares it) |", "|---|---|---|"]
        for a in actions:
            names = ", ".join(f"`{s}`" for s in a.option_strings)
            if a.metavar and a.nargs != 0:
                names += f" `{a.metavar}`"
            choices = ", ".join(f"`{c}`" for c in a.choices) if a.choices else ""
            help_ = formatter._expand_help(a) if a.help else ""
            if a.required:
                help_ += " (required)"
            lines.append(f"| {_cell(names)} | {_cell(choices)} | {_cell(help_)} |")
    return lines


def _positionals(parser: argparse.ArgumentParser) -> list[str]:
    out = []
    for a in parser._actions:
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction):
            out.append(f"- `{a.metavar or a.dest}`: {a.help or ''}")
    return out


def cli_reference() -> str:
    """Every command and flag of ``evo-ensembles`` and of the test-set generators, from the
    parsers the configs generate."""
    from evo_ensembles.cli import COMMANDS, build_parser
    from evo_ensembles.config.cli import add_config_arguments
    from evo_ensembles.config.generate import GenerateConfig

    parser = build_parser()
    lines = ["# CLI reference", "",
             "Generated from the configs (`evo_ensembles.config`) by `docs/pages.py` at build time: every "
             "command, every flag, its default and help text. `evo-ensembles COMMAND --help` prints the same.",
             "", "```text", parser.format_usage().strip(), "```", ""]
    top = _subparsers(parser)
    for cmd in COMMANDS:
        words = cmd.name.split()
        p = top[words[0]]
        if len(words) == 2:
            p = _subparsers(p)[words[1]]
        lines += [f"## `evo-ensembles {cmd.name}`", "", cmd.description, "", "```text", p.format_usage().strip(),
                  "```"]
        pos = _positionals(p)
        if pos:
            lines += ["", "Arguments:", "", *pos]
        lines += _flags_table(p) + [""]
    for module, what in (("corruptions", "the corrupted test sets (Fashion-MNIST-C, MNIST-C)"),
                         ("ood", "the out-of-distribution test sets")):
        p = argparse.ArgumentParser(prog=f"python -m evo_ensembles.data.{module}")
        add_config_arguments(p, GenerateConfig)
        lines += [f"## `python -m evo_ensembles.data.{module}`", "", f"Makes {what} under the data root.", "",
                  "```text", p.format_usage().strip(), "```"]
        pos = _positionals(p)
        if pos:
            lines += ["", "Arguments:", "", *pos]
        lines += _flags_table(p) + [""]
    return "\n".join(lines) + "\n"


# --- results.json schema ------------------------------------------------------------------------


def results_reference() -> str:
    """The ``results.json`` records of ``evo_ensembles/results.py``: each TypedDict, its keys,
    types and the comments beside them."""
    path = SRC / "results.py"
    source = path.read_text()
    src_lines = source.splitlines()
    tree = ast.parse(source)
    module_doc = ast.get_docstring(tree) or ""
    lines = ["# `results.json` schema", "",
             "Generated from `src/evo_ensembles/results.py` by `docs/pages.py`: every record a run writes, "
             "its keys, their types and the notes beside them in the code.", "", module_doc, ""]
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [ast.unparse(b) for b in node.bases if ast.unparse(b) != "TypedDict"]
        lines += [f"## `{node.name}`", ""]
        if bases:
            lines += ["Extends " + ", ".join(f"[`{b}`](#{b.lower()})" for b in bases) + ".", ""]
        doc = ast.get_docstring(node)
        if doc:
            lines += [doc, ""]
        rows = []
        for stmt in node.body:
            if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
                continue
            notes = []
            i = stmt.lineno - 2
            while i >= 0 and src_lines[i].strip().startswith("#"):
                notes.insert(0, src_lines[i].strip().lstrip("#").strip())
                i -= 1
            tail = src_lines[stmt.lineno - 1].split("#", 1)
            if len(tail) == 2:
                notes.append(tail[1].strip())
            rows.append(f"| `{stmt.target.id}` | `{_cell(ast.unparse(stmt.annotation))}` | {_cell(' '.join(notes))} |")
        if rows:
            lines += ["| key | type | note |", "|---|---|---|", *rows, ""]
    return "\n".join(lines) + "\n"


# --- API reference --------------------------------------------------------------------------------


def _modules(name: str) -> list[str]:
    """``evo_ensembles.<name>`` and, for a package, its modules (no private ones, no ``__main__``)."""
    path = SRC / name
    if path.is_dir():
        mods = [f"evo_ensembles.{name}"]
        for f in sorted(path.glob("*.py")):
            if f.stem != "__init__" and not f.stem.startswith("_"):
                mods.append(f"evo_ensembles.{name}.{f.stem}")
        return mods
    return [f"evo_ensembles.{name}"]


def api_pages() -> Iterator[tuple[str, str]]:
    """``reference/api/index.md`` (the top level: each name and where it lives) and one page per
    module group, rendered by mkdocstrings from the docstrings."""
    import evo_ensembles as ee

    where = {}
    for page, (_, names) in API.items():
        for n in names:
            for m in _modules(n):
                where[m] = page
    rows = []
    for name in sorted(ee._TOP):
        obj = getattr(ee, name)
        full = getattr(obj, "__module__", None) or "evo_ensembles" + ee._TOP[name]  # where it is defined
        page = where.get(full)
        anchor = f"{full}.{getattr(obj, '__qualname__', name)}"  # an alias links to what it names
        target = f"[`ee.{name}`]({page}.md#{anchor})" if page else f"`ee.{name}`"
        rows.append(f"| {target} | `{full}` |")
    index = ["# Python API", "",
             "`import evo_ensembles as ee` loads nothing heavy; each name below loads its module on first use. "
             "The pages of this section are generated from the docstrings (mkdocstrings).", "",
             "| name | defined in |", "|---|---|", *rows, "", "Modules, by area:", ""]
    for page, (title, _) in API.items():
        index.append(f"- [{title}]({page}.md)")
    yield "reference/api/index.md", "\n".join(index) + "\n"
    for page, (title, names) in API.items():
        body = [f"# {title}", ""]
        for n in names:
            for m in _modules(n):
                body += [f"::: {m}", "    options:", "      show_root_heading: true",
                         "      show_root_full_path: true", "      heading_level: 2", ""]
        yield f"reference/api/{page}.md", "\n".join(body)


# --- benchmark pages --------------------------------------------------------------------------


def _short(commit: str | None) -> str:
    return (commit or "unknown")[:7]


def _row_commits(stem: str) -> list[str]:
    runs = RESULTS / f"{stem}.runs.jsonl"
    if not runs.exists():
        return []
    seen: dict[str, None] = {}
    for line in runs.read_text().splitlines():
        if line.strip():
            c = json.loads(line).get("commit")
            if c:
                seen[c.split("-")[0]] = None
    return list(seen)


def _hardware(hw: dict | None) -> str:
    if not hw:
        return "not recorded"
    keys = ("cpu", "processor", "cores", "threads", "torch_threads", "gpu", "device", "torch", "platform")
    parts = [f"{k} {hw[k]}" for k in keys if hw.get(k) not in (None, "")]
    return "; ".join(parts) or json.dumps(hw)


def _rewrite_links(body: str, figures: set[str]) -> str:
    """Figures sit beside the page; links to other results pages point at their pages; links the
    site cannot follow become plain code names."""

    def fix(m: re.Match) -> str:
        bang, text, target = m.group(1), m.group(2), m.group(3)
        name = target.split("/")[-1]
        if target.startswith(("http://", "https://", "#")):
            return m.group(0)
        if name.endswith(".png") and (RESULTS / name).exists():
            figures.add(name)
            return f"{bang}[{text}]({name})"
        if name.endswith(".md") and (RESULTS / name).exists():
            return f"[{text}]({name})"
        return f"`{text}`" if not bang else f"`{target}`"

    return re.sub(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)", fix, body)


def benchmark_page(stem: str, figures: set[str]) -> tuple[str, str]:
    """(title, page) of one committed table: provenance from its JSON, the table the benchmark
    script rendered from the same record, its figures, and the paper's numbers where they exist."""
    md = (RESULTS / f"{stem}.md").read_text()
    record = json.loads((RESULTS / f"{stem}.json").read_text()) if (RESULTS / f"{stem}.json").exists() else {}
    first, _, rest = md.partition("\n")
    title = first.lstrip("# ").strip() if first.startswith("#") else stem
    prov = ["!!! info \"How this table was made\"", ""]
    if record.get("command"):
        prov.append(f"    - command: `{record['command']}`")
    commits = _row_commits(stem)
    page_commit = record.get("commit")
    if commits:
        mixed = " (the table mixes commits)" if len(commits) > 1 else ""
        prov.append(f"    - rows trained at: {', '.join(f'`{_short(c)}`' for c in commits)}{mixed}")
    prov.append(f"    - page written at: `{page_commit or 'unknown'}`"
                + (" (code differed from it)" if record.get("code_dirty") else ""))
    prov.append(f"    - hardware: {_hardware(record.get('hardware'))}")
    if record.get("date") or record.get("finished_at"):
        prov.append(f"    - date: {record.get('date') or record.get('finished_at')}")
    prov.append(f"    - files: `benchmarks/results/{stem}.md`"
                + (f", `benchmarks/results/{stem}.json`" if record else "")
                + (f", `benchmarks/results/{stem}.runs.jsonl`" if commits else ""))
    page = [f"# {title}", "", *prov, "", _rewrite_links(rest.strip(), figures), ""]
    paper = PAPER.get(stem)
    if paper:
        page += ["## The paper's numbers", "", (DOCS / "paper" / f"{paper}.md").read_text().strip(),
                 "", "The paper's tables are on other data sets and at other scales (CIFAR, ImageNet, ProcGen at "
                 "10M steps); they are shown for the shape of the result, not as a like-for-like comparison.", ""]
    return title, "\n".join(page)


def _overview(titles: dict[str, str]) -> str:
    body = (DOCS / "benchmarks_overview.md").read_text().strip()
    lines = [body, "", "## Every committed table", "",
             "Each page below is generated from the committed results (`benchmarks/results/`): the table the "
             "benchmark script rendered from its JSON record, the command, the commits of its rows and the "
             "hardware.", ""]
    for stem, title in sorted(titles.items()):
        lines.append(f"- [{title}]({stem}.md)")
    return "\n".join(lines) + "\n"


def benchmark_pages() -> tuple[list[tuple[str, str]], set[str]]:
    figures: set[str] = set()
    pages: list[tuple[str, str]] = []
    titles = {}
    for md in sorted(RESULTS.glob("*.md")):
        title, page = benchmark_page(md.stem, figures)
        titles[md.stem] = title
        pages.append((f"benchmarks/{md.stem}.md", page))
    pages.append(("benchmarks/index.md", _overview(titles)))
    return pages, figures


# --- tutorials ---------------------------------------------------------------------------------


def tutorial_page(script: Path, run: bool) -> str:
    """A tutorial script as a page: its docstring as prose, its code, and (when ``run``) what it
    printed when this build ran it."""
    source = script.read_text()
    tree = ast.parse(source)
    doc = ast.get_docstring(tree) or ""
    first = tree.body[0]
    code = "\n".join(source.splitlines()[first.end_lineno:]).strip() if isinstance(first, ast.Expr) else source
    page = [doc, "", "```python", code, "```", ""]
    if run:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT,
                              timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"tutorial {script.name} failed:\n{proc.stdout}\n{proc.stderr}")
        page += [f"What it printed when this site was built ({time.perf_counter() - start:.0f} s on the build "
                 "machine):", "", "```text", proc.stdout.strip(), "```", ""]
    else:
        page += ["!!! note", "    This build did not run the tutorial (`EVO_DOCS_TUTORIALS=skip`).", ""]
    return "\n".join(page)


def all_pages(run_tutorials: bool = True) -> Iterator[tuple[str, str]]:
    yield "reference/cli.md", cli_reference()
    yield "reference/results.md", results_reference()
    yield from api_pages()
    pages, _ = benchmark_pages()
    yield from pages
    for script in sorted((DOCS / "tutorials").glob("*.py")):
        yield f"tutorials/{script.stem}.md", tutorial_page(script, run_tutorials)


def copied_files() -> Iterator[tuple[str, Path]]:
    """Every committed figure of the results, placed beside the benchmark pages (the guides
    show some of them too)."""
    for path in sorted(RESULTS.glob("*.png")):
        yield f"benchmarks/{path.name}", path
