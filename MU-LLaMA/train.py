"""Train MU-LLaMA (both phases) or MuMu-LLaMA (stages 1-3, `model: mumu`): one engine, driven by a YAML config.

    torchrun --nproc_per_node=N MU-LLaMA/train.py --config configs/pretrain.yaml \\
        --llama_path ckpts/LLaMA --output_dir out/pretrain [--pretrained_path ...] [--resume] [--set key=value ...]

(`pretrain.sh` / `finetune.sh` / `mumu.sh` at the repository root wrap this.) Every setting is in the config;
`--set` overrides any of them (values parsed as YAML), unknown keys are errors, and the resolved
config is saved as OUTPUT_DIR/config.yaml. Outputs: OUTPUT_DIR/checkpoint.safetensors (+ .json):
trained tensors only; OUTPUT_DIR/train_state.pt: optimizer (full tensors keyed by parameter name,
whatever the number of processes), schedule position, RNG (for --resume);
OUTPUT_DIR/log.jsonl: the data report (each source's kind, records kept and left out, and what was taken
from --pretrained_path) as the first line of every start, then one JSON object per logging step.
"""

import argparse
import json

from llama.cli import run_main
from llama.flags import HelpFormatter, add_debug_argument
from llama.training import TrainConfig, dry_run, parse_overrides, train
from llama.training.distributed import shutdown_distributed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--config", required=True, help="the training YAML config (e.g. configs/pretrain.yaml)")
    parser.add_argument("--llama_path", help="overrides llama_path")
    parser.add_argument("--output_dir", help="overrides output_dir")
    parser.add_argument("--pretrained_path", help="overrides pretrained_path (finetune)")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR's last checkpoint")
    parser.add_argument("--dry_run", action="store_true",
                        help="build everything, print the first batch's loss by component, the trainable parameter "
                             "count and the data report as JSON, and exit without a step")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config values (repeatable)")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.set)
    for key in ("llama_path", "output_dir", "pretrained_path"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    config = TrainConfig.load(args.config, overrides)
    if not config.llama_path or not (config.output_dir or args.dry_run):
        raise SystemExit("llama_path and output_dir are required (config, flags or --set)")
    if args.dry_run:
        print(json.dumps(dry_run(config), indent=2))
        return
    try:
        train(config, resume=args.resume)
    finally:
        shutdown_distributed()


if __name__ == "__main__":
    run_main(main)
