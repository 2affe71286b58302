"""MusicGen as MuMu-LLaMA's music decoder, on transformers' `MusicgenForConditionalGeneration`.

It is conditioned in one of the two ways the original code used: by text (the released inference
decodes the LLM's answer and lets MusicGen's own T5 read it) or by states in T5 space (the paper's
path: the output projector's [B, 128, 768] output / 10 stands in for T5's encoding of a caption).
"""

import math
from contextlib import contextmanager

import numpy as np
import torch

from .base import MusicDecoderError, read_folder_json

TEXT_TOKENS = 128  # the original pads or cuts every caption to 128 T5 tokens, for generation and training
# Tokens per second of audio the original asks for (max_new_tokens = int(256 / 5 * seconds)). EnCodec
# makes 50 frames per second, so the audio runs ~2% longer than asked; kept so that the same request
# produces the same tokens as the released code.
FRAME_RATE = 256 / 5


@contextmanager
def seeded(seed: int | None, device: torch.device):
    """Run the block with the RNG of `device` (and the CPU's) seeded with `seed`, restoring both after:
    the caller's random state is left as it was (torch.manual_seed would also reseed every GPU).
    Without a seed nothing changes, so unseeded calls keep drawing fresh numbers."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.random.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


class MusicGenDecoder:
    """A MusicGen folder (facebook/musicgen-small or -medium layout) turning text or T5-space states into audio."""

    def __init__(self, model, tokenizer):
        self.model = model.eval()
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, path, device="cpu", dtype=torch.float32) -> "MusicGenDecoder":
        what = "a MusicGen folder such as facebook/musicgen-small (config.json with model_type 'musicgen')"
        model_type = read_folder_json(path, "config.json", what).get("model_type")
        if model_type != "musicgen":
            raise MusicDecoderError(f"{path}/config.json has model_type {model_type!r}: expected {what}")
        from transformers import AutoTokenizer, MusicgenForConditionalGeneration  # imported only when needed

        model = MusicgenForConditionalGeneration.from_pretrained(path, dtype=dtype).to(device)
        # AutoProcessor would be the usual entry, but its lookup fails in this environment (mistral-common
        # without its dependencies); the T5 tokenizer alone pads and cuts identically.
        return cls(model, AutoTokenizer.from_pretrained(path))

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def sample_rate(self) -> int:
        return self.model.config.audio_encoder.sampling_rate

    @property
    def frame_rate(self) -> float:
        """Tokens generated per second asked for: the original's 51.2, not EnCodec's 50 frames/s."""
        return FRAME_RATE

    @property
    def max_seconds(self) -> float:
        """The longest request: every generated step takes one decoder position (the start token at 0),
        so int(frame_rate * seconds) may not exceed max_position_embeddings (2048 for the released
        models: 40 s; they were trained on 30 s). The delay pattern starts each codebook one step after
        the previous, so the audio has steps + 1 - codebooks frames (codebooks per channel)."""
        return self.model.config.decoder.max_position_embeddings / FRAME_RATE

    @property
    def condition_size(self) -> int:
        return self.model.config.text_encoder.hidden_size

    @property
    def condition_tokens(self) -> int:
        return TEXT_TOKENS

    def new_tokens(self, seconds: float) -> int:
        """The original's token budget for `seconds`, or MusicDecoderError naming the limits."""
        decoder = self.model.config.decoder
        # Below 2 * codebooks - 1 steps transformers builds no delay pattern and the codebooks would not line up.
        low, high = 2 * (decoder.num_codebooks // decoder.audio_channels) - 2, decoder.max_position_embeddings
        tokens = int(FRAME_RATE * seconds) if math.isfinite(seconds) else -1
        if not low <= tokens <= high:
            raise MusicDecoderError(
                f"seconds must lie between {low / FRAME_RATE:.3g} and {self.max_seconds:g} for this MusicGen "
                f"({FRAME_RATE:g} tokens per second, {low} to {high} tokens), not {seconds}")
        return tokens

    def text_inputs(self, texts: list[str]) -> dict:
        return self.tokenizer(list(texts), padding="max_length", max_length=TEXT_TOKENS, truncation=True,
                              return_tensors="pt").to(self.device)

    @torch.no_grad()
    def text_states(self, texts: list[str], dropout: bool = False) -> torch.Tensor:
        """T5's last hidden states [B, 128, condition_size] of `texts` padded or cut to 128 tokens, padded
        positions included (the original's decoder-alignment target, before its x10). In eval mode, or
        with `dropout` in train mode, as the original computed them (each call then draws new noise)."""
        encoder = self.model.text_encoder
        encoder.train(dropout)
        try:
            return encoder(**self.text_inputs(texts)).last_hidden_state
        finally:
            encoder.eval()

    def targets(self, texts: list[str], dropout: bool = False) -> torch.Tensor:
        """What MuMu-LLaMA's projector learns to write for each text (before TARGET_SCALE): [B, 128, width]."""
        return self.text_states(texts, dropout)

    def from_text(self, texts: list[str], seconds: float, temperature: float | None = None, seed: int | None = None,
                  guidance_scale: float = 3.5) -> list[np.ndarray]:
        """One mono float32 waveform at `sample_rate` per text, as the released inference made them."""
        return self._generate(seconds, temperature, seed, guidance_scale=guidance_scale, **self.text_inputs(texts))

    def from_embeddings(self, embeds, seconds: float, temperature: float | None = None, seed: int | None = None,
                        guidance_scale: float = 1.0) -> list[np.ndarray]:
        """One waveform per row of `embeds` [B, Q, condition_size], used as T5's output with every position
        attended, as the original's embedding path did (at guidance 1)."""
        embeds = torch.as_tensor(embeds).to(self.device, self.model.dtype)
        if embeds.ndim != 3 or embeds.shape[-1] != self.condition_size:
            raise MusicDecoderError(f"embeddings must be shaped [batch, tokens, {self.condition_size}] "
                                    f"(T5 space), got {tuple(embeds.shape)}")
        if guidance_scale <= 1:
            return self._generate(seconds, temperature, seed, encoder_outputs=(embeds,), guidance_scale=guidance_scale)
        # Guidance needs an unconditional half: zero states, masked out, as MusicGen builds it for text.
        # generate() reads the batch size from `inputs`, which default to the doubled states, so it is
        # given placeholder ids of the true batch size.
        ones = torch.ones(embeds.shape[:2], dtype=torch.long, device=self.device)
        return self._generate(seconds, temperature, seed, inputs=ones[:, :1],
                              encoder_outputs=(torch.cat([embeds, torch.zeros_like(embeds)]),),
                              attention_mask=torch.cat([ones, torch.zeros_like(ones)]), guidance_scale=guidance_scale)

    def _generate(self, seconds: float, temperature: float | None, seed: int | None, **inputs) -> list[np.ndarray]:
        if temperature is None:
            sampling = {}  # the folder's generation_config: sampling, as released
        elif temperature == 0:
            sampling = {"do_sample": False}
        elif temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature}
        else:
            raise MusicDecoderError(f"temperature must be None (the folder's setting), 0 (greedy) or > 0, "
                                    f"not {temperature}")
        tokens = self.new_tokens(seconds)
        with seeded(seed, self.device):
            audio = self.model.generate(**inputs, **sampling, max_new_tokens=tokens)
        return list(audio.float().mean(dim=1).cpu().numpy())  # [B, channels, samples] -> mono
