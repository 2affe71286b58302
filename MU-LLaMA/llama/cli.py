"""What every script shares on the command line: flag value checks and one-line errors.

A user's mistake (a wrong path, a broken file, a bad flag value, a missing GPU) ends in one line on
stderr that names the cause and the fix, not in a traceback; `--debug` (or MU_LLAMA_DEBUG=1) shows
the traceback too.
"""

import argparse
import os
import sys
from pathlib import Path

from .audio import AudioError
from .files import CheckpointError


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
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: this machine has no CUDA GPU that PyTorch can use "
                              f"(torch {torch.__version__}); run with --device cpu")
