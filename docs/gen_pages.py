"""Pages generated at build time (mkdocs-gen-files), so they cannot drift from the code:

- ``reference/cli.md``: every command and flag, from the parser the configs generate;
- ``reference/results.md``: the ``results.json`` schema, from ``evo_ensembles/results.py``;
- ``reference/api/*.md``: the API reference, one page per public module group (mkdocstrings);
- ``benchmarks/*.md``: one page per committed table, from its results JSON (provenance) and the
  Markdown the benchmark script rendered from the same record, with its figures;
- ``tutorials/*.md``: the tutorial scripts under ``docs/tutorials/``, run now, their output inserted
  (``EVO_DOCS_TUTORIALS=skip`` builds without running them, for the fast test).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import mkdocs_gen_files

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import pages  # noqa: E402  (docs/pages.py: the generators, importable by the tests)

for path, text in pages.all_pages(run_tutorials=os.environ.get("EVO_DOCS_TUTORIALS", "run") != "skip"):
    with mkdocs_gen_files.open(path, "w") as f:
        f.write(text)
for path, source in pages.copied_files():
    with mkdocs_gen_files.open(path, "wb") as f:
        f.write(source.read_bytes())
