#!/usr/bin/env bash
# Quick comparison of every method and training option on the demo budget (configs/demo.yaml: 3 epochs on
# 12,000 Fashion-MNIST images, PGD-5 in training, Linf eps 0.1), evaluated on the first 1,000 test images
# with FGSM, PGD-20, PGD-50 x 3 restarts and CW-Linf. A finished run is not trained or evaluated again.
#   bash benchmarks/quick_compare.sh [OUT_DIR]      (default results/quick)
# The runs: the five methods; ascl; pgd-at with AWP (gamma 0.01); C-LEAD with views from PGD, FGSM and CW
# (clead-mixed); the C-LEAD authors' two-stage protocol (clead instance mode with mixed views, 3 more epochs
# started from the standard run's weights). About 10 minutes per run on 2 CPU cores.
# Trained in fp32 with contiguous weights (--amp none --no-channels-last), as the first five were before
# amp / channels_last defaulted to the fast path, so that all rows share one precision.
set -euo pipefail
cd "$(dirname "$0")/.."
CLEAD=${CLEAD:-.venv/bin/clead}
OUT=${1:-results/quick}
BASE=(--config configs/demo.yaml --amp none --no-channels-last)
declare -A FLAGS=(
  [standard]="--method standard"
  [pgd-at]="--method pgd-at"
  [trades]="--method trades"
  [mart]="--method mart"
  [clead]="--method clead"
  [ascl]="--method ascl"
  [pgd-at-awp]="--method pgd-at --awp-gamma 0.01"
  [clead-mixed]="--method clead --view-attacks pgd,fgsm,cw"
  [two-stage]="--method clead --mode instance --view-attacks pgd,fgsm,cw --init $OUT/standard"
)
RUNS=()
for name in standard pgd-at trades mart clead ascl pgd-at-awp clead-mixed two-stage; do
  run="$OUT/$name"
  if [ -f "$run/metrics.jsonl" ] && [ "$(wc -l < "$run/metrics.jsonl")" -ge 3 ]; then
    echo "$run: trained"
  elif [ -f "$run/last.pt" ]; then
    "$CLEAD" train --resume --out "$run" --quiet
  else
    # shellcheck disable=SC2086  # FLAGS holds several words on purpose
    "$CLEAD" train "${BASE[@]}" ${FLAGS[$name]} --out "$run" --overwrite --quiet
  fi
  [ -f "$run/eval.json" ] || "$CLEAD" eval "$run" --n 1000 --quiet > /dev/null
  RUNS+=("$run")
done
"$CLEAD" report "${RUNS[@]}" --full "$OUT" --title "Quick comparison: Fashion-MNIST, small-cnn, Linf eps 0.1, demo budget"
