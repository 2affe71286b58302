"""The command-line flags every script shares: the model flags (the upstream ones first), sampling, the
run, MuMu-LLaMA's request and music flags, their types, and the help format that shows every default."""

import argparse

import torch

from .generation import TEMPERATURE
from .loading import BASE_WEIGHTS
from .pipeline import STOP_RULES

# The released model's files, where the upstream instructions put them.
UPSTREAM_PATHS = {"model": "./ckpts/checkpoint.pth", "llama_dir": "./ckpts/LLaMA",
                  "mert_path": "./ckpts/MERT-v1-330M"}


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The script's docstring as written, and every flag's default after its help (unless the help already
    says it in words, or there is none to show)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return text
        return super()._get_help_string(action)


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


# Said in the --batch_size help of every batch script: what batching keeps, by dtype (docs/performance.md).
BATCH_DTYPE_NOTE = ("; in float32 each answer is the one it gets alone; in bf16 (--dtype auto on GPUs and on CPUs "
                    "with bf16 units) a near-tie may go another way in a batch: --dtype float32 for records that must "
                    "not depend on the batch size")


def add_model_arguments(parser: argparse.ArgumentParser, max_gen_len: int = 512, temperature: float = TEMPERATURE,
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
    sampling.add_argument("--max_gen_len", type=positive_int, default=max_gen_len,
                          help="most tokens an answer may have (fewer when the prompt leaves less room in the "
                          "model's context)")
    sampling.add_argument("--temperature", type=non_negative_float, default=temperature,
                          help="0 = greedy: the same request gives the same answer (in every script)")
    sampling.add_argument("--top_p", type=probability, default=top_p,
                          help="nucleus sampling: sample among the likeliest tokens holding this much probability "
                          "(with --temperature > 0)")
    sampling.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same answers)")
    run = parser.add_argument_group("run")
    run.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                     help="cpu, cuda or cuda:N (the default: cuda where PyTorch sees a GPU)")
    run.add_argument("--dtype", choices=["auto", "bfloat16", "float16", "float32"], default="auto",
                     help="LLaMA and bridge dtype; auto = bfloat16 on GPU and on CPUs with bf16 matrix units (AMX, "
                     "AVX512-BF16; MU_LLAMA_CPU_BF16=0 or 1 overrides what the CPU reports), else float32 (MERT "
                     "stays float32). In a batch, bf16 answers may differ from answers alone (docs/performance.md)")
    run.add_argument("--quantize", choices=["none", "int8"], default="none",
                     help="int8: LLaMA's projections in int8 weight-only (torchao): a 7B model in ~7 GB, for 16 GB "
                     "GPUs or CPU memory; slower on CPUs here, and answers drift (docs/performance.md)")
    run.add_argument("--compile", action="store_true",
                     help="decode with the LLM's decoding step compiled by torch.compile (CUDA graphs on GPU, "
                     "inductor's C++ on CPU, which needs g++ or clang++): the first answer waits for the compile "
                     "(docs/performance.md says when it pays back)")
    run.add_argument("--audio_mode", choices=["full", "upstream"], default="full",
                     help="full: encode the whole clip in 60 s windows; upstream: only its first 60 s")
    add_debug_argument(run)


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
    group.add_argument("--complete_audio_tokens", action="store_true",
                       help="an answer that began the [AUD0] .. [AUD7] set but did not finish it in order gets the "
                       "whole set, so music is made (off: a released checkpoint's answers as its model made them; "
                       "either way a reply without music says why)")


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
    group.add_argument("--output_dir", default="outputs/music",
                       help="folder generated music is written to (WAV), created if missing; checked before the model "
                       "loads; a file is never overwritten")
    group.add_argument("--music_seconds", type=positive_float,
                       help="length of generated music (default: the input clip's or video's, else 30 s, as M2UGen)")


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value
