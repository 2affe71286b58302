#!/usr/bin/env bash
# ./mumu.sh LLAMA_PATH OUTPUT_ROOT [extra train.py flags, e.g. --resume or --set key=value]
# Trains MuMu-LLaMA stages 1, 2, 3 into OUTPUT_ROOT/stage{1,2,3}; each stage starts from the previous
# stage's OUTPUT_ROOT/stageN/checkpoint.safetensors (trained tensors only).
# STAGES: which stages to run (default "1 2 3"; e.g. STAGES="2 3" after a finished stage 1).
# VARIANT: "" (default) for this project's configs/mumu-stageN.yaml, "published" for the original
#   recipe exactly, configs/mumu-stageN-published.yaml (closed gates, noisy targets, the +100 in the loss).
# GPUs per node: NPROC (default 1). Several nodes: set NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT.
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 LLAMA_PATH OUTPUT_ROOT [train.py flags]" >&2; exit 2; fi
cd "$(dirname "$0")"
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
SUFFIX=${VARIANT:+-$VARIANT}
for stage in ${STAGES:-1 2 3}; do
    previous=()
    if [ "$stage" -gt 1 ]; then previous=(--pretrained_path "$2/stage$((stage - 1))/checkpoint.safetensors"); fi
    "$PY" -m torch.distributed.run --nproc_per_node="${NPROC:-1}" --nnodes="${NNODES:-1}" \
        --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-29511}" \
        MU-LLaMA/train.py --config "configs/mumu-stage$stage$SUFFIX.yaml" --llama_path "$1" \
        --output_dir "$2/stage$stage" "${previous[@]}" --set model=mumu "stage=$stage" "${@:3}"
done
