#!/usr/bin/env bash
# Quick comparison of every method on the demo budget (configs/demo.yaml: 3 epochs on 12,000 Fashion-MNIST
# images, PGD-5 in training, Linf eps 0.1), evaluated on the first 1,000 test images with FGSM, PGD-20,
# PGD-50 x 3 restarts and CW-Linf. About 40 minutes on 2 CPU cores. A finished run is not trained again.
#   bash benchmarks/quick_compare.sh [OUT_DIR]      (default results/quick)
set -euo pipefail
cd "$(dirname "$0")/.."
CLEAD=${CLEAD:-.venv/bin/clead}
OUT=${1:-results/quick}
RUNS=()
for method in standard pgd-at trades mart clead; do
  run="$OUT/$method"
  if [ -f "$run/metrics.jsonl" ] && [ "$(wc -l < "$run/metrics.jsonl")" -ge 3 ]; then
    echo "$run: trained"
  elif [ -f "$run/last.pt" ]; then
    "$CLEAD" train --resume --out "$run" --quiet
  else
    "$CLEAD" train --config configs/demo.yaml --method "$method" --out "$run" --overwrite --quiet
  fi
  [ -f "$run/eval.json" ] || "$CLEAD" eval "$run" --n 1000 --quiet > /dev/null
  RUNS+=("$run")
done
"$CLEAD" report "${RUNS[@]}" --full "$OUT" --title "Quick comparison: Fashion-MNIST, small-cnn, Linf eps 0.1, demo budget"
