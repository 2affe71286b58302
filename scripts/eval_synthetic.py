"""How well a MU-LLaMA answers the held-out questions of a synthetic set, and whether it listens.

    .venv/bin/python scripts/eval_synthetic.py --model outputs/tiny/pretrain/checkpoint.safetensors \\
        --llama_dir outputs/tiny/LLaMA --mert_path outputs/tiny/MERT --data outputs/tiny/synthetic
    .venv/bin/python scripts/eval_synthetic.py --data outputs/demo/synthetic     # the demo model

Every test question of the set (MU-LLaMA/data/synthetic.py) is answered greedily twice: with its
own clip, and with another clip's audio (a seeded derangement). An answer is right when it names
the clip's class (instrument family, tempo, mode, loudness, instrument count) and no other.
Prints a Markdown table; `--output` also writes it as JSON.
"""

import argparse
import json
from pathlib import Path

import llama
from llama.cli import UsageError, resolve_model_paths, run_main
from llama.data.synthetic import compare, markdown_table
from llama.flags import HelpFormatter, add_debug_argument


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--model", help="none of --model/--llama_dir/--mert_path: the demo model (as inference.py)")
    parser.add_argument("--llama_dir", help="base LLaMA (Meta or HF format) + tokenizer (default: ./ckpts/LLaMA, "
                        "or the demo model's)")
    parser.add_argument("--llama_type", default="7B", help="subfolder of --llama_dir holding the base weights")
    parser.add_argument("--mert_path", help="MERT checkpoint folder (default: ./ckpts/MERT-v1-330M, or the demo "
                        "model's)")
    parser.add_argument("--data", required=True, help="folder written by data/synthetic.py (test.json, facts.json)")
    parser.add_argument("--kinds", nargs="+", help="question kinds to score (default: all)")
    parser.add_argument("--limit", type=int, help="score only the first N test questions")
    parser.add_argument("--shuffle_seed", type=int, default=0,
                        help="seed of the derangement that gives each question another clip's audio")
    parser.add_argument("--max_gen_len", type=int, default=24, help="most tokens an answer may have")
    parser.add_argument("--output", help="write the table as JSON here too")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    for name in ("test.json", "facts.json"):  # before the model loads: a 7B takes minutes
        if not (Path(args.data) / name).is_file():
            raise UsageError(f"--data {args.data} has no {name}: give a folder written by data/synthetic.py")
    resolve_model_paths(args)
    model = llama.load(args.model, args.llama_dir, args.mert_path, llama_type=args.llama_type)
    comparison = compare(model, args.data, args.kinds, args.limit, args.shuffle_seed, args.max_gen_len)
    print(markdown_table(comparison))
    if args.output:
        Path(args.output).write_text(json.dumps(comparison, indent=1))


if __name__ == "__main__":
    run_main(main)
