"""Answer questions about music files with MU-LLaMA.

    python MU-LLaMA/inference.py --model ckpts/checkpoint.pth --llama_dir ckpts/LLaMA \
        --mert_path ckpts/MERT-v1-330M --audio_path song.mp3 --question "Describe the music"

With none of --model, --llama_dir and --mert_path, the demo model that ships in demo/ answers
(README, "The demo model"). Every --audio_path is asked every --question, all in one batched call.
`add_model_arguments` and `load_model` are shared with the other scripts that load a model.
"""

import argparse
import sys
from pathlib import Path

import torch

import llama
from llama.cli import add_debug_argument, check_device, non_negative_float, positive_int, probability, run_main

ROOT = Path(__file__).resolve().parents[1]
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
    model.add_argument("--base_weights", choices=llama.build.BASE_WEIGHTS, default="checkpoint",
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


def load_model(args) -> llama.MULLaMA:
    check_device(args.device)
    resolve_model_paths(args)
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if args.device.startswith("cuda") else "float32")
    return llama.load(args.model, args.llama_dir, args.mert_path, llama_type=args.llama_type, device=args.device,
                      dtype=getattr(torch, dtype), audio_mode=args.audio_mode,
                      base_weights=args.base_weights)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio_path", nargs="+", required=True, help="one or more audio files")
    parser.add_argument("--question", nargs="+", default=["Describe the Audio"], help="one or more questions")
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    model = load_model(args)
    clips, failed = {}, {}
    for path in args.audio_path:  # a file that cannot be read is reported; the others are answered
        try:
            clips[path], warnings = model.load_clip(path)
        except llama.AudioError as e:
            failed[path] = str(e)
            continue
        for warning in warnings:
            print(f"inference.py: warning: {path}: {warning}", file=sys.stderr)
    pairs = [(path, q) for path in clips for q in args.question]
    answers = model.answer([clips[p] for p, _ in pairs], [q for _, q in pairs], max_new_tokens=args.max_gen_len,
                           temperature=args.temperature, top_p=args.top_p, seed=args.seed) if pairs else []
    for (path, question), answer in zip(pairs, answers, strict=True):
        print(f"Audio File: {path}\nQ: {question}\nA: {answer}\n")
    for why in failed.values():
        print(f"inference.py: error: not answered: {why}", file=sys.stderr)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    run_main(main)
