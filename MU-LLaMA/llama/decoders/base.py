"""What every music decoder gives MuMu-LLaMA, and the one error type they raise.

A decoder (MusicGen, AudioLDM2, the demo's note-event decoder) is loaded from its folder
(`load(path, device, dtype)`) and has `sample_rate`, `max_seconds` and `condition_size`: the width of one
row of the conditioning it reads, whose rows (`queries`) and width the output projector writes
(`DECODER_CONDITIONING`). It makes music from text (`from_text`, the released inference: the answer is
read by the decoder's own text encoder) or from the projector's output (`from_embeddings`, the paper's
path), and gives the decoder-alignment target of a caption (`targets`: what the projector learns to write,
before `TARGET_SCALE`).
"""

import json
from pathlib import Path

import torch

# The projector's output for each decoder: (query rows, width). MusicGen reads 128 rows of its T5 width;
# AudioLDM2 one row holding 128 x 1024 T5 states and 8 x 768 GPT-2 states; the note-event decoder one row of 64.
DECODER_CONDITIONING = {"musicgen": (128, 768), "audioldm2": (1, 128 * 1024 + 8 * 768), "notes": (1, 64)}
# The projector learns TARGET_SCALE x the decoder's conditioning, and its output is divided by it before the
# decoder reads it (the original's).
TARGET_SCALE = 10


class MusicDecoderError(ValueError):
    """A music decoder folder or request that cannot be used, with a message a user can act on."""


def alignment_targets(decoder, captions: list[str], dropout: bool = False) -> torch.Tensor:
    """What the projector learns to write for each caption: TARGET_SCALE x the decoder's conditioning.
    dropout: the decoder's text encoder in training mode (the original's noisy targets)."""
    return TARGET_SCALE * decoder.targets(captions, dropout=dropout)


def decoder_input(projected: torch.Tensor) -> torch.Tensor:
    """The projector's output as the decoder reads it."""
    return projected / TARGET_SCALE


def read_folder_json(path: Path, name: str, what: str) -> dict:
    """The JSON file `name` of a model folder, or MusicDecoderError saying what the folder should be."""
    file = Path(path) / name
    if not Path(path).is_dir():
        raise MusicDecoderError(f"{path} is no folder: expected {what}")
    if not file.is_file():
        raise MusicDecoderError(f"{path} holds no {name}: expected {what}")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise MusicDecoderError(f"{file} is not valid JSON ({error}); expected {what}") from None
