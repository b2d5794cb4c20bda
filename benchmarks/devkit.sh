#!/usr/bin/env bash
# Fill .devkit/ (ignored by git) with what a lent GPU machine lacks, for `run` to carry: pyautoattack
# (from .venv, without its 44 MB of examples) and the data: `fmnist` (the Fashion-MNIST archives, 31 MB),
# `cifar10` (the CIFAR-10 JPEG tarball from ../shared/data, 20 MB) or both (the default).
# Then it prints what would travel: the tracked files plus .devkit must stay under the device's 64 MiB.
# The committed checkpoints alone are over that, so park them for the call and bring them back after; a suite
# that resumes keeps its own (and the runs it starts from: --init, transfer sources), e.g. ':!results/SUITE':
#
#   bash benchmarks/devkit.sh cifar10
#   git ls-files -z 'results/*.pt' ':!results/SUITE' | tar --null -cf /tmp/parked-pt.tar -T - && tar -tf /tmp/parked-pt.tar | xargs rm
#   ... run(command="NO_WEIGHTS=1 bash benchmarks/device_suite.sh cifar10-gpu 2 540", carry=[".devkit"]) ...
#   tar -xf /tmp/parked-pt.tar && git status --short results | head     # nothing left missing
#
# With the Fashion-MNIST kit (31 MB) the other tracked results are too many as well: park every tracked file of
# results/ outside the directories the suite reads, `git ls-files -z results | grep -zv -e '^results/SUITE/'
# -e '^results/OTHER/RUN/' > /tmp/park.list`, then tar and rm as above with `-T /tmp/park.list`.
set -eu
what=${1:-all}
rm -rf .devkit && mkdir -p .devkit/site
site=$(.venv/bin/python -c "import pyautoattack, os; print(os.path.dirname(pyautoattack.__file__))")
cp -r "$site" .devkit/site/pyautoattack && rm -rf .devkit/site/pyautoattack/examples .devkit/site/pyautoattack/__pycache__
if [ "$what" != cifar10 ]; then
  cp /usr/share/datasets/fashion-mnist/*.gz .devkit/ || { echo "no Fashion-MNIST here (make data)" >&2; exit 2; }
fi
if [ "$what" != fmnist ]; then
  cp ../shared/data/cifar10-jpeg.tar.gz .devkit/ || { echo "no ../shared/data/cifar10-jpeg.tar.gz here" >&2; exit 2; }
fi
kit=$(du -sb .devkit | cut -f1)
tree=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
echo "devkit $((kit / 1048576)) MiB + tracked files present $((tree / 1048576)) MiB = $(((kit + tree) / 1048576)) MiB (limit 64)"
