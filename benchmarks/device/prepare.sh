#!/usr/bin/env bash
# Prepares what a leased GPU machine (Python 3.12, PyTorch, no network, no RL packages, no
# libGL) needs to run the RL benchmarks from a copy of this tree:
#   .whl/     Python 3.12 manylinux wheels of the RL stack (gym 0.26.2 is built here: it is
#             an sdist); install there with
#             pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   .gllibs/  libGL and its X11/glib dependencies for procgen's libenv.so, copied from this
#             machine; put on LD_LIBRARY_PATH there.
# Both folders are git-ignored through .git/info/exclude and travel as carried paths.
# Usage (repo root): bash benchmarks/device/prepare.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mkdir -p .git/info .whl .gllibs
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
grep -qx '/.gllibs/' .git/info/exclude 2>/dev/null || echo /.gllibs/ >> .git/info/exclude
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 --platform any)
for pkg in procgen-mirror gym3 stable-baselines3 gymnasium cloudpickle farama-notifications cffi pycparser \
           glfw imageio moderngl glcontext gym-notices; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plat[@]}" -d .whl "$pkg"
done
python3 -m pip wheel -q --no-deps "gym==0.26.2" -w .whl
for lib in libGL.so.1 libGLX.so.0 libGLdispatch.so.0 libX11.so.6 libxcb.so.1 libXau.so.6 libXdmcp.so.6 \
           libbsd.so.0 libmd.so.0 libglib-2.0.so.0 libgthread-2.0.so.0 libpcre2-8.so.0; do
  cp -L "/lib/x86_64-linux-gnu/$lib" .gllibs/
done
du -sh .whl .gllibs
