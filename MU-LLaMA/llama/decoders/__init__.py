"""Music decoders that turn MuMu-LLaMA's answers into audio: MusicGen (transformers) and AudioLDM2
(diffusers), each conditioned by text or by the output projector's embeddings; and the demo model's
note-event decoder (notes.py), trained here."""

import torch

from .audioldm2 import AudioLDM2Decoder
from .musicgen import MusicDecoderError, MusicGenDecoder
from .notes import NoteEventDecoder

DECODERS = {"musicgen": MusicGenDecoder, "audioldm2": AudioLDM2Decoder, "notes": NoteEventDecoder}

__all__ = ["DECODERS", "AudioLDM2Decoder", "MusicDecoderError", "MusicGenDecoder", "NoteEventDecoder", "load_decoder"]


def load_decoder(kind: str, path, device="cpu", dtype=torch.float32):
    """The decoder of `kind` ("musicgen", "audioldm2" or "notes") from its folder."""
    if kind not in DECODERS:
        raise MusicDecoderError(f"music decoder must be one of {sorted(DECODERS)}, not {kind!r}")
    return DECODERS[kind].load(path, device=device, dtype=dtype)
