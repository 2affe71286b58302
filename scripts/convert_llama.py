"""Convert a LLaMA folder between Meta format (params.json + consolidated.*.pth) and HF format
(config.json + model.safetensors), optionally changing dtype or the number of Meta shards.

    .venv/bin/python scripts/convert_llama.py SRC DST --to hf|meta [--dtype bfloat16] [--shards N]
"""

import argparse

import torch

from llama import load_llama, save_hf, save_meta
from llama.cli import run_main
from llama.flags import HelpFormatter, add_debug_argument


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("src", help="LLaMA folder to read (Meta or HF format)")
    parser.add_argument("dst", help="folder to write")
    parser.add_argument("--to", choices=["hf", "meta"], required=True,
                        help="hf: config.json + model.safetensors; meta: params.json + consolidated.*.pth")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"],
                        help="dtype of the written weights")
    parser.add_argument("--shards", type=int, default=1, help="Meta format only: model-parallel shards")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    model = load_llama(args.src, dtype=getattr(torch, args.dtype))
    if args.to == "hf":
        save_hf(model.state_dict(), model.args, args.dst)
    else:
        save_meta(model.state_dict(), model.args, args.dst, num_shards=args.shards)
    print(f"wrote {args.dst}")


if __name__ == "__main__":
    run_main(main)
