"""Music decoders that turn MuMu-LLaMA's answers into audio: MusicGen (transformers) and AudioLDM2
(diffusers), each conditioned by text or by the output projector's embeddings; and the demo model's
note-event decoder (notes.py), trained here. What each gives: base.py."""

import torch

from .audioldm2 import AudioLDM2Decoder
from .base import DECODER_CONDITIONING, TARGET_SCALE, MusicDecoderError, alignment_targets, decoder_input
from .musicgen import MusicGenDecoder
from .notes import NoteEventDecoder

DECODERS = {"musicgen": MusicGenDecoder, "audioldm2": AudioLDM2Decoder, "notes": NoteEventDecoder}

__all__ = ["DECODERS", "DECODER_CONDITIONING", "TARGET_SCALE", "AudioLDM2Decoder", "MusicDecoderError",
           "MusicGenDecoder", "NoteEventDecoder", "alignment_targets", "decoder_input", "load_decoder"]


def load_decoder(kind: str, path, device="cpu", dtype=torch.float32):
    """The decoder of `kind` ("musicgen", "audioldm2" or "notes") from its folder."""
    if kind not in DECODERS:
        raise MusicDecoderError(f"music decoder must be one of {sorted(DECODERS)}, not {kind!r}")
    return DECODERS[kind].load(path, device=device, dtype=dtype)
