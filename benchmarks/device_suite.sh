#!/usr/bin/env bash
# Bring a `clead bench` suite up to date on a lent CUDA machine for at most SECONDS, then pack every run
# directory (one .tgz each) into $OUT for the trip back. The suite resumes from what comes back, anywhere.
#
#   bash benchmarks/device_suite.sh SUITE JOBS SECONDS
#
# What the machine lacks travels in .devkit/ (ignored by git; `bash benchmarks/devkit.sh` fills it): the
# Fashion-MNIST archives, pyautoattack (copied from .venv without its 44 MB of examples) and the CIFAR-10 JPEG
# tarball, which goes to ../shared/data/ there as here. PY picks the interpreter (default python3).
# NO_WEIGHTS=1 leaves the .pt files out of what comes back (full-width ResNets: at most 16 MiB a file returns),
# so such runs must finish inside the call. SPLIT_BEST=1 does the same but brings each run's best.pt back in
# parts of 15 MiB (RUN-best.pt.part00, ...; join with `cat RUN-best.pt.part* > RUN/best.pt`): with
# best_dtype: float16 a full-width PreAct ResNet-18 is two parts, and its evaluation ran on exactly those weights.
set -u
suite=$1 jobs=$2 secs=$3
out=${OUT:-/tmp/clead-device-out}
py=${PY:-python3}
mkdir -p "$out"
export PYTHONPATH=$PWD/src:$PWD/.devkit/site PYTHONUNBUFFERED=1
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  mkdir -p /usr/share/datasets/fashion-mnist && cp .devkit/*.gz /usr/share/datasets/fashion-mnist/
fi
if [ -f .devkit/cifar10-jpeg.tar.gz ] && [ ! -f ../shared/data/cifar10-jpeg.tar.gz ]; then
  mkdir -p ../shared/data && cp .devkit/cifar10-jpeg.tar.gz ../shared/data/
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$py" -c "import torch, clead, pyautoattack; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 1

# timeout signals its whole process group: the spawned workers stop with the parent
timeout -k 20 -s INT "$secs" "$py" -m clead bench "$suite" --jobs "$jobs" --quiet 2>&1 | tee "$out/bench.log"

cd "results/$suite" || exit 1
skip=(--exclude '*.tmp'); [ "${NO_WEIGHTS:-0}" = 1 ] || [ "${SPLIT_BEST:-0}" = 1 ] && skip+=(--exclude '*.pt')
for d in */; do
  tar czf "$out/${d%/}.tgz" "${skip[@]}" "${d%/}"
  [ "${SPLIT_BEST:-0}" = 1 ] && [ -f "${d%/}/best.pt" ] && split -b 15m -d "${d%/}/best.pt" "$out/${d%/}-best.pt.part"
done
files=$(find . -maxdepth 1 -type f)
[ -n "$files" ] && tar czf "$out/suite-files.tgz" $files
ls -la "$out"
