#!/usr/bin/env bash
# ./pretrain.sh LLAMA_PATH CONFIG OUTPUT_DIR [extra train.py flags, e.g. --resume or --set key=value]
# GPUs per node: NPROC (default 1). Several nodes: set NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT.
set -euo pipefail
if [ $# -lt 3 ]; then echo "usage: $0 LLAMA_PATH CONFIG OUTPUT_DIR [train.py flags]" >&2; exit 2; fi
cd "$(dirname "$0")"
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PY" -m torch.distributed.run --nproc_per_node="${NPROC:-1}" --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-29511}" \
    MU-LLaMA/train.py --config "$2" --llama_path "$1" --output_dir "$3" --set phase=pretrain "${@:4}"
