"""Convert a MU-LLaMA checkpoint (the released 17.7 GB `checkpoint.pth`) to this project's format:
its trained tensors only (bridge, prefix, gates, LoRA, biases, norms) in safetensors, plus a JSON
config beside it. The base LLaMA and MERT stay where they are (--llama_dir, --mert_path).

    python MU-LLaMA/convert_checkpoint.py ckpts/checkpoint.pth ckpts/mu_llama.safetensors
"""

import argparse

from llama import read_mu_llama, save_mu_llama
from llama.cli import add_debug_argument, run_main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint.pth (original layout) or a .safetensors of this project")
    parser.add_argument("output", help="output .safetensors (the config goes to the same name with .json)")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    tensors, config = read_mu_llama(args.checkpoint)
    save_mu_llama(args.output, tensors, config, converted_from=str(args.checkpoint))
    size = sum(t.numel() * t.element_size() for t in tensors.values()) / 1e9
    print(f"wrote {len(tensors)} tensors ({size:.2f} GB, phase {config.phase}) to {args.output}")


if __name__ == "__main__":
    run_main(main)
