#!/usr/bin/env bash
# ./finetune.sh LLAMA_PATH PRETRAINED CONFIG OUTPUT_DIR [extra train.py flags, e.g. --resume or --set key=value]
# PRETRAINED: the pretrain run's checkpoint.safetensors (or the released checkpoint.pth).
# GPUs per node: NPROC (default 1). Several nodes: set NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT.
set -euo pipefail
if [ $# -lt 4 ]; then echo "usage: $0 LLAMA_PATH PRETRAINED CONFIG OUTPUT_DIR [train.py flags]" >&2; exit 2; fi
cd "$(dirname "$0")"
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PY" -m torch.distributed.run --nproc_per_node="${NPROC:-1}" --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-29511}" \
    MU-LLaMA/train.py --config "$3" --llama_path "$1" --pretrained_path "$2" --output_dir "$4" \
    --set phase=finetune "${@:5}"
