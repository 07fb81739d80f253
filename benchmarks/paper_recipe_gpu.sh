#!/usr/bin/env bash
# The paper's recipe, end to end on one GPU, timed: Config.market1501() (ResNet50, last stride 1,
# 256x128, P=16 x K=4, Adam 3.5e-4, warmup 10, steps 40/70, 120 epochs, triplet + label-smoothed
# softmax + center loss) on the Market-1501-sized synthetic set, from scratch (ImageNet weights
# cannot be fetched offline; on Colab drop `--pretrained none`).
#
#   bash benchmarks/paper_recipe_gpu.sh              # trains (or resumes) runs/paper-synthetic, then tests it
#   bash benchmarks/paper_recipe_gpu.sh --hard-factor 0.2 --name paper-synthetic-hem
#
# The training split is decoded once (cached under the data root) and augmented on the GPU
# (cfg.train_data="auto"); the workers only decode it the first time and read the test images.
# Checkpoints every 2 epochs, so an interrupted run loses little: run the same command again.
# Per-epoch times and images/s are in <run>/history.json; the wall time is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RUNS=${REID_RUNS:-runs}
NAME=paper-synthetic
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [[ ${args[i]} == --name ]] && NAME=${args[i + 1]}; done
start=$(date +%s)
$PY -m reid train --preset market1501 --dataset synthetic --synthetic-preset market --pretrained none \
  --num-workers "${WORKERS:-12}" --checkpoint-period 2 --name "$NAME" --resume "${args[@]}"
echo "train wall time (this invocation): $(( $(date +%s) - start )) s"
$PY -m reid test --run "$RUNS/$NAME" --num-workers "${WORKERS:-12}"
