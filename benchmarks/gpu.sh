#!/usr/bin/env bash
# One-shot GPU benchmark (see benchmarks/gpu.py); expects the project installed (make setup) or on PYTHONPATH.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} timeout 480 "$PY" benchmarks/gpu.py "$@"
