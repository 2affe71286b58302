"""AudioLDM2 as MuMu-LLaMA's music decoder, on diffusers' `AudioLDM2Pipeline` (cvssp/audioldm2-music).

The UNet reads two condition sequences: T5's states of the prompt and the 8 states GPT-2 generates
from the CLAP + T5 projection. The original's embedding path has the output projector emit both at
once as one flat vector, split here as it was: the first prompt_tokens * prompt_dim values are the
T5 states, the rest the GPT-2 states (137216 = 128 * 1024 + 8 * 768 for audioldm2-music).
"""

import math
from pathlib import Path

import numpy as np
import torch

from .base import MusicDecoderError, read_folder_json


def generator(seed: int | None) -> torch.Generator | None:
    """A CPU generator, so that a seed gives the same starting noise on any device."""
    return None if seed is None else torch.Generator().manual_seed(seed)


class AudioLDM2Decoder:
    """A diffusers AudioLDM2 pipeline folder turning text or flat condition vectors into audio."""

    def __init__(self, pipe):
        self.pipe = pipe
        pipe.set_progress_bar_config(disable=True)

    @classmethod
    def load(cls, path, device="cpu", dtype=torch.float32) -> "AudioLDM2Decoder":
        what = "an AudioLDM2 pipeline folder such as cvssp/audioldm2-music (model_index.json of AudioLDM2Pipeline)"
        name = read_folder_json(path, "model_index.json", what).get("_class_name")
        if name != "AudioLDM2Pipeline":
            raise MusicDecoderError(f"{path}/model_index.json describes {name!r}: expected {what}")
        from diffusers import AudioLDM2Pipeline  # imported only when needed: diffusers takes seconds to load
        from transformers import GPT2LMHeadModel

        # The released folders store GPT-2 as GPT2Model, which in transformers 5 lacks the generation
        # helpers diffusers' pipeline calls; the same weights load into GPT2LMHeadModel, whose hidden
        # states are GPT2Model's (the LM head is tied and unused).
        language_model = GPT2LMHeadModel.from_pretrained(Path(path) / "language_model", dtype=dtype)
        pipe = AudioLDM2Pipeline.from_pretrained(Path(path), language_model=language_model, dtype=dtype)
        return cls(pipe.to(device))

    @property
    def sample_rate(self) -> int:
        return self.pipe.vocoder.config.sampling_rate

    @property
    def prompt_tokens(self) -> int:
        """T5 prompt length: AudioLDM2 pads or cuts prompts to 128 tokens, a constant of its original code
        that the diffusers conversion stores as tokenizer_2's model_max_length; the original M2UGen
        pipeline padded every prompt to it, hence its 128 * 1024 split."""
        return self.pipe.tokenizer_2.model_max_length

    @property
    def prompt_dim(self) -> int:
        return self.pipe.text_encoder_2.config.hidden_size

    @property
    def generated_tokens(self) -> int:
        """GPT-2 states per prompt: the pipeline's default, the language model config's max_new_tokens (8)."""
        return self.pipe.language_model.config.max_new_tokens

    @property
    def generated_dim(self) -> int:
        return self.pipe.language_model.config.hidden_size

    @property
    def condition_size(self) -> int:
        return self.prompt_tokens * self.prompt_dim + self.generated_tokens * self.generated_dim

    @property
    def min_seconds(self) -> float:
        """One latent frame: vocoder hop * VAE downsampling, in seconds (diffusers' own lower bound)."""
        return math.prod(self.pipe.vocoder.config.upsample_rates) * self.pipe.vae_scale_factor / self.sample_rate

    @property
    def max_seconds(self) -> float:
        """No fixed limit: the latent grows with the request (the released model was trained on 10 s)."""
        return math.inf

    def check_seconds(self, seconds: float) -> float:
        if not (math.isfinite(seconds) and seconds >= self.min_seconds):
            raise MusicDecoderError(f"seconds must be at least {self.min_seconds:g} for this AudioLDM2 "
                                    f"(one latent frame), and finite, not {seconds}")
        return seconds

    @torch.no_grad()
    def targets(self, texts: list[str], dropout: bool = False) -> torch.Tensor:
        """What MuMu-LLaMA's projector learns to write for each text (before TARGET_SCALE): [B, 1,
        condition_size], the T5 states of the text padded or cut to `prompt_tokens` (padded positions
        included, as MusicGen's target; `from_embeddings` attends to all of them) followed by the 8 GPT-2
        states diffusers generates from it, flattened as `from_embeddings` splits them. `dropout`: the
        text encoders in train mode (the original's noisy targets)."""
        pipe = self.pipe
        device = pipe.text_encoder_2.device
        inputs = pipe.tokenizer_2(list(texts), padding="max_length", max_length=self.prompt_tokens, truncation=True,
                                  return_tensors="pt").to(device)
        encoders = (pipe.text_encoder, pipe.text_encoder_2)
        for encoder in encoders:
            encoder.train(dropout)
        try:
            prompt = pipe.text_encoder_2(**inputs).last_hidden_state
            # one text at a time: diffusers pads a batch to its longest prompt and GPT-2 then generates from
            # right-padded inputs, so a text's states would depend on the batch it came in
            generated = torch.cat([pipe.encode_prompt([text], device, 1, False)[2] for text in texts])
        finally:
            for encoder in encoders:
                encoder.eval()
        return torch.cat([prompt.flatten(1), generated.flatten(1)], dim=1)[:, None]

    def from_text(self, texts: list[str], seconds: float, seed: int | None = None, steps: int = 200,
                  waveforms: int = 3, negative_prompt: str = "Low quality.") -> list[np.ndarray]:
        """One mono float32 waveform at `sample_rate` per text, as the released inference made it: the
        first of `waveforms` candidates, which diffusers ranks by CLAP text-audio score. Each text runs
        alone, as the original's batch of one did: diffusers ranks a batch's candidates against every
        prompt's, so with several prompts it could return another prompt's waveform."""
        seconds = self.check_seconds(seconds)
        return [self.pipe([text], negative_prompt=[negative_prompt], num_inference_steps=steps,
                          num_waveforms_per_prompt=waveforms, audio_length_in_s=seconds,
                          generator=generator(seed)).audios[0] for text in texts]

    def from_embeddings(self, flat, seconds: float, seed: int | None = None, steps: int = 200) -> list[np.ndarray]:
        """One waveform per row of `flat` [B, condition_size] or [B, 1, condition_size], split into T5 and
        GPT-2 states as the original did (with the pipeline's guidance 3.5 against the empty prompt)."""
        seconds = self.check_seconds(seconds)
        flat = torch.as_tensor(flat)
        if flat.ndim == 3 and flat.shape[1] == 1:
            flat = flat[:, 0]
        if flat.ndim != 2 or flat.shape[1] != self.condition_size:
            raise MusicDecoderError(f"embeddings must be shaped [batch, {self.condition_size}] or [batch, 1, "
                                    f"{self.condition_size}] ({self.prompt_tokens} x {self.prompt_dim} T5 + "
                                    f"{self.generated_tokens} x {self.generated_dim} GPT-2), got {tuple(flat.shape)}")
        # One generator per row, seeded alike: a row's starting noise does not depend on the rest of the batch.
        generators = None if seed is None else [generator(seed) for _ in flat]
        split = self.prompt_tokens * self.prompt_dim
        prompt = flat[:, :split].reshape(len(flat), self.prompt_tokens, self.prompt_dim)
        generated = flat[:, split:].reshape(len(flat), self.generated_tokens, self.generated_dim)
        return list(self.pipe(prompt_embeds=prompt, generated_prompt_embeds=generated, num_inference_steps=steps,
                              audio_length_in_s=seconds, generator=generators).audios)
