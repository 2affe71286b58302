"""Convert a MU-LLaMA checkpoint (the released 17.7 GB `checkpoint.pth`) to this project's format:
its trained tensors only (bridge, prefix, gates, LoRA, biases, norms) in safetensors, plus a JSON
config beside it. The base LLaMA and MERT stay where they are (--llama_dir, --mert_path).

A MuMu-LLaMA (M2UGen) checkpoint.pth (23-31 GB) is recognised and converted the same way: its
bridges, prefix, output projector, the backbone's norms, biases, LoRA and gates, the trained
embedding and the output head's [AUD] rows (about 2.4 GB at 7B); encoders and decoder stay in
their folders.

    python MU-LLaMA/convert_checkpoint.py ckpts/checkpoint.pth ckpts/mu_llama.safetensors
"""

import argparse

from llama.checkpoints import read_checkpoint
from llama.checkpoints.safetensors import save_trained, trained_state
from llama.cli import run_main
from llama.flags import HelpFormatter, add_debug_argument


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint.pth (original layout) or a .safetensors of this project")
    parser.add_argument("output", help="output .safetensors (the config goes to the same name with .json)")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    checkpoint = read_checkpoint(args.checkpoint)
    config, tensors = checkpoint.config, checkpoint.tensors
    mumu = checkpoint.kind == "mumu_llama"
    if mumu and checkpoint.base:  # a released M2UGen file: the head's [AUD] rows too (the base stays out)
        tensors = trained_state(tensors, checkpoint.base)
    save_trained(args.output, tensors, config, converted_from=str(args.checkpoint))
    kind = f"MuMu-LLaMA, {config.music_decoder}" if mumu else f"phase {config.phase}"
    size = sum(t.numel() * t.element_size() for t in tensors.values()) / 1e9
    print(f"wrote {len(tensors)} tensors ({size:.2f} GB, {kind}) to {args.output}")


if __name__ == "__main__":
    run_main(main)
