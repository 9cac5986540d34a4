#!/usr/bin/env bash
# Builds the documentation site into site/ (not committed) with --strict: a broken link, a missing
# API reference or a failing tutorial fails the build. The tutorials run during the build (a few
# minutes on 2 cores); EVO_DOCS_TUTORIALS=skip builds without running them.
# Usage: bash scripts/docs.sh [mkdocs build flags]     e.g. bash scripts/docs.sh -d /tmp/site
#        bash scripts/docs.sh serve                     a live preview on http://127.0.0.1:8000
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >&2
if [ "${1:-}" = "serve" ]; then shift; exec .venv/bin/python -m mkdocs serve "$@"; fi
exec .venv/bin/python -m mkdocs build --strict "$@"
