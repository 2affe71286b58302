"""What every script shares on the command line: the model flags and how they become a loaded
model, flag value checks, and one-line errors.

A user's mistake (a wrong path, a broken file, a bad flag value, a missing GPU) ends in one line on
stderr that names the cause and the fix, not in a traceback; `--debug` (or MU_LLAMA_DEBUG=1) shows
the traceback too.
"""

import os
import sys
from functools import lru_cache
from pathlib import Path

import torch
import transformers

from .audio import AudioError
from .checkpoints import Checkpoint, read_checkpoint
from .compiled import CompileError, check_compiler
from .decoders.base import MusicDecoderError
from .encoders.base import EncoderInputError
from .files import CheckpointError
from .flags import UPSTREAM_PATHS
from .loading import load
from .media import MediaError
from .model import Transformer
from .paths import ROOT
from .pipeline import Pipeline
from .precision import auto_dtype, quantize_int8


class UsageError(ValueError):
    """A flag that cannot work on this machine or with these files, with what to do instead."""


# Errors that come from what the user gave: their message is the whole story.
USER_ERRORS = (CheckpointError, AudioError, MediaError, MusicDecoderError, EncoderInputError, UsageError, OSError)


def run_main(main, argv=None):
    """Call `main(argv)`; a user error becomes `script: error: message` on stderr and exit status 2, Ctrl-C
    `script: interrupted` and status 130 (what was already written stays)."""
    debug = "--debug" in (argv if argv is not None else sys.argv) or os.environ.get("MU_LLAMA_DEBUG")
    try:
        return main(argv)
    except USER_ERRORS as e:
        if debug:
            raise
        print(f"{Path(sys.argv[0]).name}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as e:  # Ctrl-C: one line, what was kept, and the shell's status for it
        if debug:
            raise
        print(f"{Path(sys.argv[0]).name}: interrupted{': ' + str(e) if str(e) else ''}", file=sys.stderr)
        sys.exit(130)


def check_device(args) -> None:
    """A CUDA device asked for on a machine without one, or --compile on a CPU without a C++ compiler: said
    before anything is loaded."""
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: this machine has no CUDA GPU that PyTorch can use "
                         f"(torch {torch.__version__}); run with --device cpu")
    if getattr(args, "compile", False):
        try:
            check_compiler(torch.device(args.device))
        except CompileError as e:
            raise UsageError(str(e)) from None


# The demo model: trained tensors and encoder in the repository, backbone converted by scripts/install.sh.
DEMO_PATHS = {"model": str(ROOT / "demo" / "checkpoint.safetensors"),
              "llama_dir": str(ROOT / "ckpts" / "SmolLM2-135M-Instruct"), "mert_path": str(ROOT / "demo" / "MERT")}
# The demo MuMu-LLaMA: the same backbone and music encoder, its trained tensors, ViT and note-event decoder in
# demo/mumu.
DEMO_MUMU_PATHS = {"model": str(ROOT / "demo" / "mumu" / "checkpoint.safetensors"),
                   "llama_dir": DEMO_PATHS["llama_dir"], "mert_path": DEMO_PATHS["mert_path"],
                   "vit_path": str(ROOT / "demo" / "mumu" / "ViT"),
                   "music_decoder_path": str(ROOT / "demo" / "mumu" / "notes")}


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


def model_dtype(args) -> torch.dtype:
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
    """None of --model, --llama_dir and --mert_path: the demo MuMu-LLaMA (said on stderr), with its own ViT and
    note-event decoder unless --music_decoder_path names another, its music made from the projector's conditioning
    unless --music_conditioning says otherwise. The demo sees pictures through its own ViT only and hears no
    video: --vit_path, --vivit_path and --video_file are refused, naming what they need, rather than dropping
    the demo."""
    if all(getattr(args, k, None) is None for k in ("model", "llama_dir", "mert_path")):
        if getattr(args, "vit_path", None):
            raise UsageError(f"--vit_path {args.vit_path}: the demo MuMu-LLaMA (used when --model, --llama_dir and "
                             "--mert_path are not given) was trained on its own ViT's features (demo/mumu/ViT), which "
                             "it uses for --image_file; another ViT needs a MuMu-LLaMA trained with it")
        video = [f"--{k}" for k in ("vivit_path", "video_file") if getattr(args, k, None)]
        if video:
            raise UsageError(f"{' and '.join(video)}: the demo MuMu-LLaMA (used when --model, --llama_dir and "
                             "--mert_path are not given) takes music and pictures, not video. Video needs a MuMu-LLaMA "
                             "trained with it, e.g. the released M2UGen: --model "
                             "ckpts/M2UGen-MusicGen-medium/checkpoint.pth --llama_dir ckpts/LLaMA --mert_path "
                             "ckpts/MERT-v1-330M --vit_path ckpts/vit --vivit_path ckpts/vivit --music_decoder_path "
                             "ckpts/musicgen-medium (ckpts/README.md)")
        print("no --model/--llama_dir/--mert_path given: using the small demo MuMu-LLaMA in demo/mumu (synthetic music "
              "and pictures only; docs/demo-models.md)", file=sys.stderr)
        given = {k: v for k, v in DEMO_MUMU_PATHS.items() if getattr(args, k, None) is None}
        vars(args).update(given)
        if getattr(args, "music_conditioning", None) is None:
            args.music_conditioning = "projector"
    if getattr(args, "music_conditioning", None) is None:
        args.music_conditioning = "text"


def load_mumu_model(args) -> Pipeline:
    check_device(args)
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
                    llama_type=args.llama_type, device=args.device, dtype=model_dtype(args), stop_rules=args.stop_rules,
                    audio_mode=args.audio_mode, music_decoder=args.music_decoder, compile=args.compile)
    _read_model.cache_clear()  # the model holds what it keeps of the file
    if args.music_temperature is not None and pipeline.model.config.music_decoder == "audioldm2":
        raise UsageError("--music_temperature is MusicGen's; AudioLDM2 samples by diffusion (use --seed)")
    quantize(args, pipeline.model.llama)
    return pipeline


def load_model(args, mumu: bool = False) -> Pipeline:
    """The MU-LLaMA the flags name; with `mumu`, a MuMu-LLaMA checkpoint too, for questions about clips (music in,
    text out: no ViT, ViViT or music decoder)."""
    check_device(args)
    resolve_model_paths(args)
    checkpoint = read_model(args.model)
    if checkpoint.kind == "mumu_llama" and not mumu:  # checked first: these scripts ask about clips only
        raise UsageError(f"{args.model} is a MuMu-LLaMA (M2UGen) checkpoint: run it with MU-LLaMA/inference.py "
                         "(--prompt, --audio_file, --image_file, --video_file); this script takes MU-LLaMA checkpoints")
    pipeline = load(checkpoint, args.llama_dir, args.mert_path, llama_type=args.llama_type, device=args.device,
                    dtype=model_dtype(args), audio_mode=args.audio_mode, base_weights=args.base_weights,
                    compile=args.compile)
    _read_model.cache_clear()
    quantize(args, pipeline.model.llama)
    return pipeline
