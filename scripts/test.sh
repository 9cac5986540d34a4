#!/usr/bin/env bash
# Runs the default test suite (fast, CPU-only; `-m slow` adds the end-to-end runs).
# Sets up .venv first if needed (scripts/setup.sh is idempotent and fast when cached).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
