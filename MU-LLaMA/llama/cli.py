"""What every script shares on the command line: the model flags and how they become a loaded
model, flag value checks, and one-line errors.

A user's mistake (a wrong path, a broken file, a bad flag value, a missing GPU) ends in one line on
stderr that names the cause and the fix, not in a traceback; `--debug` (or MU_LLAMA_DEBUG=1) shows
the traceback too.
"""

import argparse
import os
import sys
from pathlib import Path

import torch

from .audio import AudioError
from .build import BASE_WEIGHTS, load
from .files import CheckpointError
from .pipeline import Pipeline


class UsageError(ValueError):
    """A flag that cannot work on this machine or with these files, with what to do instead."""


# Errors that come from what the user gave: their message is the whole story.
USER_ERRORS = (CheckpointError, AudioError, UsageError, OSError)


def run_main(main, argv=None):
    """Call `main(argv)`; a user error becomes `script: error: message` on stderr and exit status 2."""
    try:
        return main(argv)
    except USER_ERRORS as e:
        if "--debug" in (argv if argv is not None else sys.argv) or os.environ.get("MU_LLAMA_DEBUG"):
            raise
        print(f"{Path(sys.argv[0]).name}: error: {e}", file=sys.stderr)
        sys.exit(2)


def add_debug_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error, not just its message")


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 = greedy), got {text}")
    return value


def probability(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def check_device(device: str) -> None:
    """A CUDA device asked for on a machine without one: say so before anything is loaded."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: this machine has no CUDA GPU that PyTorch can use "
                              f"(torch {torch.__version__}); run with --device cpu")


ROOT = Path(__file__).resolve().parents[2]  # the repository
# The released model's files, where the upstream instructions put them.
UPSTREAM_PATHS = {"model": "./ckpts/checkpoint.pth", "llama_dir": "./ckpts/LLaMA",
                  "mert_path": "./ckpts/MERT-v1-330M"}
# The demo model: trained tensors and encoder in the repository, backbone converted by scripts/install.sh.
DEMO_PATHS = {"model": str(ROOT / "demo" / "checkpoint.safetensors"),
              "llama_dir": str(ROOT / "ckpts" / "SmolLM2-135M-Instruct"), "mert_path": str(ROOT / "demo" / "MERT")}


def add_model_arguments(parser: argparse.ArgumentParser, max_gen_len: int = 512, temperature: float = 0.6,
                        top_p: float = 0.8):
    """The upstream model flags, the sampling flags and the run flags."""
    model = parser.add_argument_group("model (upstream flags)")
    model.add_argument("--model", help="released checkpoint.pth or a .safetensors written by convert_checkpoint.py "
                       f"or train.py (default: {UPSTREAM_PATHS['model']}; with none of --model, --llama_dir and "
                       "--mert_path: the demo model)")
    model.add_argument("--llama_type", default="7B", help="subfolder of --llama_dir holding the base weights")
    model.add_argument("--llama_dir",
                       help=f"base LLaMA (Meta or HF format) + tokenizer (default: {UPSTREAM_PATHS['llama_dir']})")
    model.add_argument("--mert_path", help=f"MERT checkpoint folder (default: {UPSTREAM_PATHS['mert_path']})")
    model.add_argument("--knn_dir", help="ignored: the ImageBind KNN cache of the original code is not used")
    model.add_argument("--base_weights", choices=BASE_WEIGHTS, default="checkpoint",
                       help="when the checkpoint carries its own base LLaMA (the released checkpoint.pth does) and it "
                       "differs from --llama_dir's: use the checkpoint's, as the original code did, or --llama_dir's")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--max_gen_len", type=positive_int, default=max_gen_len)
    sampling.add_argument("--temperature", type=non_negative_float, default=temperature, help="0 = greedy")
    sampling.add_argument("--top_p", type=probability, default=top_p)
    sampling.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same answers)")
    run = parser.add_argument_group("run")
    run.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    run.add_argument("--dtype", choices=["auto", "bfloat16", "float16", "float32"], default="auto",
                     help="LLaMA and bridge dtype; auto = bfloat16 on GPU, float32 on CPU (MERT stays float32)")
    run.add_argument("--audio_mode", choices=["full", "upstream"], default="full",
                     help="full: encode the whole clip in 60 s windows; upstream: only its first 60 s")
    add_debug_argument(run)


def resolve_model_paths(args) -> None:
    """Fill --model/--llama_dir/--mert_path: all three unset means the demo model (said on stderr),
    otherwise each unset one takes the upstream default."""
    if all(getattr(args, k) is None for k in UPSTREAM_PATHS):
        print("no --model/--llama_dir/--mert_path given: using the small demo model in demo/ (synthetic music only; "
              "README 'The demo model')", file=sys.stderr)
        vars(args).update(DEMO_PATHS)
    for key, default in UPSTREAM_PATHS.items():
        if getattr(args, key) is None:
            setattr(args, key, default)


def load_model(args) -> Pipeline:
    check_device(args.device)
    resolve_model_paths(args)
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if args.device.startswith("cuda") else "float32")
    return load(args.model, args.llama_dir, args.mert_path, llama_type=args.llama_type, device=args.device,
                      dtype=getattr(torch, dtype), audio_mode=args.audio_mode,
                      base_weights=args.base_weights)
