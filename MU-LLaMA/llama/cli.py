"""What every script shares on the command line: the model flags and how they become a loaded
model, flag value checks, and one-line errors.

A user's mistake (a wrong path, a broken file, a bad flag value, a missing GPU) ends in one line on
stderr that names the cause and the fix, not in a traceback; `--debug` (or MU_LLAMA_DEBUG=1) shows
the traceback too.
"""

import argparse
import os
import sys
from functools import lru_cache
from pathlib import Path

import torch
import transformers

from .audio import AudioError
from .checkpoints import Checkpoint, read_checkpoint
from .decoders.base import MusicDecoderError
from .encoders.base import EncoderInputError
from .files import CheckpointError
from .loading import BASE_WEIGHTS, load
from .media import MediaError
from .model import Transformer
from .paths import ROOT
from .pipeline import STOP_RULES, Pipeline
from .precision import auto_dtype, quantize_int8


class UsageError(ValueError):
    """A flag that cannot work on this machine or with these files, with what to do instead."""


# Errors that come from what the user gave: their message is the whole story.
USER_ERRORS = (CheckpointError, AudioError, MediaError, MusicDecoderError, EncoderInputError, UsageError, OSError)


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


# The released model's files, where the upstream instructions put them.
UPSTREAM_PATHS = {"model": "./ckpts/checkpoint.pth", "llama_dir": "./ckpts/LLaMA",
                  "mert_path": "./ckpts/MERT-v1-330M"}
# The demo model: trained tensors and encoder in the repository, backbone converted by scripts/install.sh.
DEMO_PATHS = {"model": str(ROOT / "demo" / "checkpoint.safetensors"),
              "llama_dir": str(ROOT / "ckpts" / "SmolLM2-135M-Instruct"), "mert_path": str(ROOT / "demo" / "MERT")}
# The demo MuMu-LLaMA: the same backbone and encoder, its trained tensors and note-event decoder in demo/mumu.
DEMO_MUMU_PATHS = {"model": str(ROOT / "demo" / "mumu" / "checkpoint.safetensors"),
                   "llama_dir": DEMO_PATHS["llama_dir"], "mert_path": DEMO_PATHS["mert_path"],
                   "music_decoder_path": str(ROOT / "demo" / "mumu" / "notes")}


# Said in the --batch_size help of every batch script: what batching keeps, by dtype (docs/performance.md).
BATCH_DTYPE_NOTE = ("; in float32 each answer is the one it gets alone; in bf16 (--dtype auto on GPUs and on CPUs "
                    "with bf16 units) a near-tie may go another way in a batch: --dtype float32 for records that must "
                    "not depend on the batch size")


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
                     help="LLaMA and bridge dtype; auto = bfloat16 on GPU and on CPUs with bf16 matrix units (AMX, "
                     "AVX512-BF16; MU_LLAMA_CPU_BF16=0 or 1 overrides what the CPU reports), else float32 (MERT "
                     "stays float32). In a batch, bf16 answers may differ from answers alone (docs/performance.md)")
    run.add_argument("--quantize", choices=["none", "int8"], default="none",
                     help="int8: LLaMA's projections in int8 weight-only (torchao): a 7B model in ~7 GB, for 16 GB "
                     "GPUs or CPU memory; slower on CPUs here, and answers drift (docs/performance.md)")
    run.add_argument("--audio_mode", choices=["full", "upstream"], default="full",
                     help="full: encode the whole clip in 60 s windows; upstream: only its first 60 s")
    add_debug_argument(run)


def resolve_model_paths(args) -> None:
    """Fill --model/--llama_dir/--mert_path: all three unset means the demo model (said on stderr),
    otherwise each unset one takes the upstream default."""
    if all(getattr(args, k) is None for k in UPSTREAM_PATHS):
        print("no --model/--llama_dir/--mert_path given: using the small demo model in demo/ (synthetic music only; "
              "docs/demo-models.md)", file=sys.stderr)
        vars(args).update(DEMO_PATHS)
    for key, default in UPSTREAM_PATHS.items():
        if getattr(args, key) is None:
            setattr(args, key, default)


def add_mumu_model_arguments(parser: argparse.ArgumentParser):
    """MuMu-LLaMA (M2UGen): the encoder and decoder flags (the original's) and how music is made."""
    group = parser.add_argument_group("MuMu-LLaMA / M2UGen model (upstream M2UGen flags, then music output)")
    group.add_argument("--vit_path", help="ViT folder (google/vit-base-patch16-224-in21k), for --image_file")
    group.add_argument("--vivit_path", help="ViViT folder (google/vivit-b-16x2-kinetics400), for --video_file")
    group.add_argument("--music_decoder", choices=["musicgen", "audioldm2", "notes"],
                       help="the decoder the checkpoint was trained for (default: read from the checkpoint)")
    group.add_argument("--music_decoder_path", help="MusicGen folder (facebook/musicgen-small|medium) or AudioLDM2 "
                       "pipeline folder (cvssp/audioldm2-music); without it, answers only")
    group.add_argument("--music_conditioning", choices=["text", "projector"],
                       help="text: the decoder reads the answer (the released code; the default); projector: the "
                       "output projector's states (the paper; the demo model's default)")
    group.add_argument("--music_temperature", type=non_negative_float,
                       help="MusicGen sampling temperature, 0 = greedy (default: the decoder folder's settings)")
    group.add_argument("--stop_rules", choices=STOP_RULES, default="default",
                       help="upstream: the original's (EOS ignored, answer cut at its first newline)")


def add_mumu_arguments(parser: argparse.ArgumentParser):
    """MuMu-LLaMA (M2UGen): the model flags, the original's request flags and the music-output flags."""
    add_mumu_model_arguments(parser)
    group = parser.add_argument_group("MuMu-LLaMA / M2UGen request (upstream M2UGen flags, then music output)")
    group.add_argument("--prompt", nargs="+", help="one or more instructions (M2UGen; default 'Generate a music')")
    group.add_argument("--audio_file", help="a music clip the model hears (M2UGen)")
    group.add_argument("--image_file", help="an image the model sees (M2UGen)")
    group.add_argument("--video_file", help="a video the model watches (M2UGen): 32 frames of it")
    group.add_argument("--video_start", default="middle", help="which 32 frames: middle (default), random (as the "
                       "original; --seed makes it repeatable) or a frame number")
    group.add_argument("--output_dir", default="outputs/music", help="where generated music is written (WAV)")
    group.add_argument("--music_seconds", type=positive_float,
                       help="length of generated music (default: the input clip's or video's, else 30 s, as M2UGen)")


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


MUMU_FLAGS = ("vit_path", "vivit_path", "music_decoder", "music_decoder_path", "prompt", "audio_file", "image_file",
              "video_file", "music_seconds", "music_temperature", "music_conditioning")


def read_model(path: str) -> Checkpoint:
    """--model, read once per run: its kind decides which model the script runs, and loading takes that read."""
    file = Path(path)
    stat = file.stat() if file.is_file() else None  # a changed file is read again
    return _read_model(path, stat and (stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=1)
def _read_model(path: str, version) -> Checkpoint:
    return read_checkpoint(path)


def wants_mumu(args) -> bool:
    """Whether the run is MuMu-LLaMA's: a MuMu checkpoint given, or any M2UGen-only flag."""
    if any(getattr(args, k, None) is not None for k in MUMU_FLAGS):
        return True
    return args.model is not None and read_model(args.model).kind == "mumu_llama"


def _dtype(args) -> torch.dtype:
    if args.dtype != "auto":
        return getattr(torch, args.dtype)
    try:
        return auto_dtype(args.device)
    except ValueError as e:  # a bad $MU_LLAMA_CPU_BF16
        raise UsageError(str(e)) from None


def quantize(args, llama: Transformer) -> None:
    if getattr(args, "quantize", "none") == "int8":
        quantize_int8(llama)


def resolve_mumu_paths(args) -> None:
    """No model, encoder or decoder flag at all: the demo MuMu-LLaMA (said on stderr), its music made from
    the projector's conditioning unless --music_conditioning says otherwise."""
    flags = ("model", "llama_dir", "mert_path", "vit_path", "vivit_path", "music_decoder_path")
    if all(getattr(args, k, None) is None for k in flags):
        print("no --model/--llama_dir/--mert_path/--music_decoder_path given: using the small demo MuMu-LLaMA in "
              "demo/mumu (synthetic music only; docs/demo-models.md)", file=sys.stderr)
        vars(args).update(DEMO_MUMU_PATHS)
        if getattr(args, "music_conditioning", None) is None:
            args.music_conditioning = "projector"
    if getattr(args, "music_conditioning", None) is None:
        args.music_conditioning = "text"


def load_mumu_model(args) -> Pipeline:
    check_device(args.device)
    resolve_mumu_paths(args)
    args.model = args.model or UPSTREAM_PATHS["model"]
    args.llama_dir = args.llama_dir or UPSTREAM_PATHS["llama_dir"]
    if args.audio_file and not args.mert_path:
        args.mert_path = UPSTREAM_PATHS["mert_path"]
    checkpoint = read_model(args.model)
    if checkpoint.kind != "mumu_llama":
        raise UsageError(f"{args.model} is not a MuMu-LLaMA (M2UGen) checkpoint, but M2UGen flags were given; "
                         "MU-LLaMA takes --audio_path and --question")
    encoders = (("--image_file", args.image_file, "--vit_path", args.vit_path, "vit-base-patch16-224-in21k"),
                ("--video_file", args.video_file, "--vivit_path", args.vivit_path, "vivit-b-16x2-kinetics400"))
    for input_flag, given, flag, folder, hub in encoders:
        if given and not folder:
            raise UsageError(f"{input_flag} needs its encoder: pass {flag} (a folder holding google/{hub})")
    if args.music_temperature is not None and args.music_decoder == "audioldm2":
        raise UsageError("--music_temperature is MusicGen's; AudioLDM2 samples by diffusion (use --seed)")
    # transformers' notes on the released configs (MusicGen's pad id 2048 of 2048 codes) and its loading
    # bars are not the user's business; errors still show
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    pipeline = load(checkpoint, args.llama_dir, args.mert_path, args.vit_path, args.vivit_path, args.music_decoder_path,
                    llama_type=args.llama_type, device=args.device, dtype=_dtype(args), stop_rules=args.stop_rules,
                    audio_mode=args.audio_mode, music_decoder=args.music_decoder)
    _read_model.cache_clear()  # the model holds what it keeps of the file
    if args.music_temperature is not None and pipeline.model.config.music_decoder == "audioldm2":
        raise UsageError("--music_temperature is MusicGen's; AudioLDM2 samples by diffusion (use --seed)")
    quantize(args, pipeline.model.llama)
    return pipeline


def load_model(args) -> Pipeline:
    check_device(args.device)
    resolve_model_paths(args)
    checkpoint = read_model(args.model)
    if checkpoint.kind == "mumu_llama":  # checked first: these scripts ask MU-LLaMA's questions about clips only
        raise UsageError(f"{args.model} is a MuMu-LLaMA (M2UGen) checkpoint: run it with MU-LLaMA/inference.py "
                         "(--prompt, --audio_file, --image_file, --video_file); this script takes MU-LLaMA checkpoints")
    pipeline = load(checkpoint, args.llama_dir, args.mert_path, llama_type=args.llama_type, device=args.device,
                    dtype=_dtype(args), audio_mode=args.audio_mode, base_weights=args.base_weights)
    _read_model.cache_clear()
    quantize(args, pipeline.model.llama)
    return pipeline
