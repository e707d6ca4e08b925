#!/usr/bin/env bash
# Create the benchmark virtualenv: torch + numpy + upstream openunmix 1.3.0 WITHOUT torchaudio, and unmix itself.
#
# Upstream openunmix declares torchaudio as a dependency but uses it only for file I/O; we install it with --no-deps
# and benchmarks/_upstream.py inserts a clearly marked STUB `torchaudio` module before importing openunmix.
#
# Usage: benchmarks/setup_bench_env.sh [VENV_DIR]      (default /work/bench-venv)
set -euo pipefail
VENV="${1:-/work/bench-venv}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install torch==2.13.0 numpy          # a CPU-only torch wheel is fine for the CPU benchmark
"$VENV/bin/pip" install --no-deps openunmix==1.3.0   # no torchaudio: the benchmark stubs it
"$VENV/bin/pip" install --no-deps -e "$REPO"          # unmix (optional: the benchmark also puts the repo on sys.path)

"$VENV/bin/python" - <<PY
import sys
sys.path.insert(0, "$REPO/benchmarks")
from _upstream import upstream_version
import torch, unmix
print("torch", torch.__version__, "| openunmix", upstream_version(), "(torchaudio stubbed) | unmix", unmix.__version__)
PY
echo "ready: $VENV/bin/python $REPO/benchmarks/bench_separator.py --runs 5 --threads 1 2"
