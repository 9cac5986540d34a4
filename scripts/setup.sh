#!/usr/bin/env bash
# Sets up everything evo_ensembles needs on a fresh Debian machine:
#   1. the Fashion-MNIST IDX files (Debian package dataset-fashion-mnist) when missing;
#   2. a cached dependency environment outside the clone, keyed by a hash of
#      requirements/*.txt, so torch/torchvision (a multi-GB install) is built once;
#   3. .venv/ at the repo root: a light venv that sees the cached dependencies through a
#      .pth file and holds this package in editable mode (.venv/bin/evo-ensembles);
#   4. Fashion-MNIST's derived test sets under the data root when missing: Fashion-MNIST-C
#      (about 1.5 minutes on 2 cores, once) and the OOD sets (seconds), so the demo scores
#      them with no extra step. A font package (fonts-dejavu-core) draws the OOD letters;
#      Chromium (chromium, chromium-driver) is for the docs' browser check.
# Usage: bash scripts/setup.sh            (idempotent; fast when the cache is warm)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
PY="${PYTHON:-python3}"

log() { printf '[setup] %s\n' "$*" >&2; }

# --- 1. data ---------------------------------------------------------------------
fm_dir="${EVO_ENSEMBLES_DATA_ROOT:-/usr/share/datasets}/fashion-mnist"
if [ ! -f "$fm_dir/train-images-idx3-ubyte.gz" ] && [ ! -f "$fm_dir/train-images-idx3-ubyte" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    log "installing Debian package dataset-fashion-mnist"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    log "Fashion-MNIST not found at $fm_dir; run as root: apt-get install dataset-fashion-mnist"
  fi
fi
# The OOD set "letters" is drawn from installed TrueType fonts.
if [ -z "$(find /usr/share/fonts -iname '*.ttf' -print -quit 2>/dev/null)" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    log "installing Debian package fonts-dejavu-core"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null
  else
    log "no TrueType font under /usr/share/fonts; run as root: apt-get install fonts-dejavu-core"
  fi
fi

# The docs' browser check (tests/test_docs_browser.py) opens the built site in headless Chromium.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    log "installing Debian packages chromium and chromium-driver (the docs' browser check)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    log "no chromium/chromedriver; the docs' browser check needs them: apt-get install chromium chromium-driver"
  fi
fi

# --- 2. cached dependency environment ---------------------------------------------
key="$(cat requirements/*.txt | sha256sum | cut -c1-16)-$("$PY" -c 'import sys;print("py%d%d"%sys.version_info[:2])')"
cache_root="${EVO_ENSEMBLES_CACHE:-$HOME/.cache/evo_ensembles}"
deps="$cache_root/deps-$key"
mkdir -p "$cache_root"
# One builder per environment: a second setup (another clone, a test run) waits here
# instead of writing into the same directory, then finds it complete.
exec 9>"$deps.lock"
if ! flock -n 9; then
  log "waiting for another setup building $deps"
  flock 9
fi
if [ ! -f "$deps/.complete" ]; then
  log "building dependency environment $deps (first time only; torch is large)"
  rm -rf "$deps"
  mkdir -p "$cache_root"
  "$PY" -m venv "$deps"
  "$deps/bin/python" -m pip install -q --upgrade pip
  # One pip call for every requirements file, so one resolver sees all the pins.
  reqs=(); for f in requirements/*.txt; do reqs+=(-r "$f"); done
  "$deps/bin/python" -m pip install -q "${reqs[@]}" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  "$deps/bin/python" -c 'import torch, torchvision, evotorch' \
    || { log "dependency install failed"; exit 1; }
  touch "$deps/.complete"
fi
flock -u 9
deps_site="$("$deps/bin/python" -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')"

# --- 3. the project's .venv --------------------------------------------------------
# --without-pip: pip and setuptools come from the cached environment (through the .pth
# below), so the editable install needs no download and no old bundled setuptools.
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv --without-pip .venv
fi
venv_site="$(.venv/bin/python -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')"
echo "$deps_site" > "$venv_site/_evo_ensembles_deps.pth"
if ! .venv/bin/python -c 'import evo_ensembles' 2>/dev/null || [ ! -x .venv/bin/evo-ensembles ]; then
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e . 2>&1 \
    | grep -v "^WARNING: Location" >&2 || true
fi
if ! .venv/bin/python -c 'import evo_ensembles' 2>/dev/null || [ ! -x .venv/bin/evo-ensembles ]; then
  log "editable install of evo_ensembles into .venv failed"; exit 1
fi
# Console scripts of the dependencies (pytest, ruff) live in the cached env.
for tool in pytest ruff mkdocs; do
  ln -sfn "$deps/bin/$tool" ".venv/bin/$tool"
done

# --- 4. derived test sets of the default data set ------------------------------------
# Each command returns at once when its complete set (same settings, matching sha256s) is
# there, and (re)writes it otherwise, atomically.
data_root="${EVO_ENSEMBLES_DATA_ROOT:-/usr/share/datasets}"
if [ ! -f "$fm_dir/t10k-images-idx3-ubyte.gz" ] && [ ! -f "$fm_dir/t10k-images-idx3-ubyte" ]; then
  log "skipping Fashion-MNIST's corrupted and OOD test sets: Fashion-MNIST is not at $fm_dir"
else
  for pair in corruptions:fashion-mnist-c ood:fashion-mnist-ood; do
    cmd=".venv/bin/python -m evo_ensembles.data.${pair%%:*} fashion-mnist"
    if [ -w "$data_root" ]; then
      out="$($cmd --no-progress)" || { log "failed: $cmd"; exit 1; }
      log "test set ${pair#*:}: $out"
    elif [ ! -f "$data_root/${pair#*:}/manifest.json" ]; then
      log "$data_root is not writable; to make ${pair#*:}, run as a user who can write it: $cmd"
    fi
  done
fi
log "ready: $(.venv/bin/python -c 'import torch,torchvision,evo_ensembles;print("torch",torch.__version__,"torchvision",torchvision.__version__,"evo_ensembles",evo_ensembles.__version__)')"
