"""The package type-checks: mypy over src/ at the strictness pyproject.toml states."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_errors_in_the_package():
    pytest.importorskip("mypy", reason="mypy is installed by scripts/setup.sh (requirements/base.txt)")
    if not (ROOT / "pyproject.toml").is_file() or not (ROOT / "src" / "evo_ensembles").is_dir():
        pytest.skip("not a checkout of the repository")
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-color-output"], cwd=ROOT, capture_output=True,
                         text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "Success: no issues found" in out.stdout
