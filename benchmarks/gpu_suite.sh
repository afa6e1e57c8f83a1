#!/usr/bin/env bash
# The GPU measurements of our speed targets in two parts with shortened settings meant for a short lease of one GPU (not yet run
# on one: their length is unmeasured; each command stops after STEP_TIMEOUT, default 420 s; MNIST must be in
# data/MNIST/raw). Results go to benchmarks/results/ (or $OUT/results when OUT is set, for
# a remote machine whose outputs come back from $OUT), with a log of every command.
#
#   bash benchmarks/gpu_suite.sh a     # training throughput of every method + AIS (100 steps timed, scaled to 1000),
#                                      # then ours against pythae
#   bash benchmarks/gpu_suite.sh b     # predicted GPU hours of the paper-scale MNIST table, fast-path flags
#   bash benchmarks/gpu_suite.sh all
set -uo pipefail
part="${1:-all}"
py="${PYTHON:-python3}"
res="${OUT:+$OUT/results}"
res="${res:-benchmarks/results}"
mkdir -p "$res"
log="$res/gpu_suite_${part}.log"
run() {
  echo "== $(date -u +%FT%TZ) $*" | tee -a "$log"
  timeout "${STEP_TIMEOUT:-420}" "$py" -m "$@" --out "$res" 2>&1 | grep -v 'it/s]' | tee -a "$log"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$log"
if [[ "$part" == a || "$part" == all ]]; then
  run benchmarks.throughput --device cuda --seconds 10 --ais --ais-steps 100
  run benchmarks.peer_pythae --device cuda --images 20000 --conv-images 10000 --trials 3
fi
if [[ "$part" == b || "$part" == all ]]; then
  run benchmarks.table_cost --device cuda --seconds 5
  run benchmarks.throughput --device cuda --seconds 10 --compile reduce-overhead --bf16 --methods vae_mlp,avb_conv,avae
  run benchmarks.fast_path_check --device cuda --steps 5000 --configs eager,bf16,compile,adam_loop
fi
