"""The base LLM alone, as a model of no modalities: the text-only control of an evaluation (the LLaMA a
MU-LLaMA or MuMu-LLaMA was built on, asked the same questions in the same template, with no adapter, bridge or
trained tensor). A `Pipeline` around it answers (`answer(None, questions)`) and scores options
(`option_logprobs(None, ...)`) with the same code as the full model."""

from dataclasses import dataclass
from typing import ClassVar

import torch

from .loading import assemble
from .paths import llama_folder
from .pipeline import Pipeline


@dataclass
class BaseLLMConfig:
    """No inputs and no music output: the multimodal model reduced to its backbone."""

    prompt_template: str = "upstream"
    query_layer: int = 0

    modalities: ClassVar[tuple[str, ...]] = ()
    music_output: ClassVar[None] = None
    audio_mode: ClassVar[str] = "full"

    def backbone_args(self) -> dict:
        return {}


def load_base(llama_dir, prompt_template: str, llama_type: str | None = "7B", device="cpu",
              dtype=torch.float32, stop_rules: str = "default") -> Pipeline:
    """The LLaMA in `llama_dir` (Meta or HF format, found as `load` finds it) in a Pipeline with `prompt_template`."""
    model, tokenizer = assemble(BaseLLMConfig(prompt_template), llama_folder(llama_dir, llama_type), None,
                                device=device, dtype=dtype)
    return Pipeline(model.requires_grad_(False).eval(), tokenizer, stop_rules=stop_rules)
