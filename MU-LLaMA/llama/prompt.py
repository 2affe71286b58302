"""Prompt templates and answer extraction.

"upstream" is byte for byte what the released MU-LLaMA was trained and evaluated on, including
the Python builtin's repr that the original code put in the Input field by accident; checkpoints
from the original code must use it. "alpaca" is the clean Alpaca no-input template. "chatml" is
one user turn in ChatML, the format SmolLM2-Instruct was tuned on (the demo model's backbone);
its opening `<|im_start|>` is not in the text because that tokenizer's BOS is `<|im_start|>`.
"""

from typing import NamedTuple

import torch

IGNORE_INDEX = -100  # label of tokens that carry no loss (prompt, padding)

TEMPLATES = {
    "upstream": (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Input:\n<built-in function input>\n\n### Response:"
    ),
    "alpaca": (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Response:"
    ),
    "chatml": "user\n{instruction}<|im_end|>\n<|im_start|>assistant\n",
}


def format_prompt(instruction: str, template: str = "upstream") -> str:
    if template not in TEMPLATES:
        raise ValueError(f"unknown prompt template {template!r}; known: {sorted(TEMPLATES)}")
    return TEMPLATES[template].format(instruction=instruction)


def extract_answer(text: str) -> str:
    """The answer part of a generated continuation: up to a new '###' section, stripped."""
    return text.split("\n###")[0].strip()


TOKENIZATIONS = ("separate", "joint")


class Example(NamedTuple):
    """One training sequence: tokens, labels (IGNORE_INDEX on the prompt), and whether the answer was cut
    at max_words (its end, the EOS or the [AUD] tokens, lost)."""

    tokens: torch.Tensor
    labels: torch.Tensor
    cut: bool


def encode_example(tokenizer, question: str, answer: str, template: str, max_words: int,
                   tokenization: str = "separate", eos: bool = True) -> Example | None:
    """One training example, or None when even the prompt exceeds `max_words`.

    "separate": the answer is tokenised on its own and appended to the prompt's tokens, so the
    boundary is exact and the answer's tokens are the ones the model generates after the prompt.
    "joint" (the original code's): prompt + answer are tokenised as one string and the first
    len(tokenize(prompt)) labels are masked, so the first answer word becomes a piece without its
    leading space ("Response:" + "The" -> "The", not "▁The"), and where SentencePiece merges across the
    boundary the mask is off by a token, as it was in the original's training.
    eos: end the answer with EOS (MU-LLaMA's original does; M2UGen's does not).
    If the sequence exceeds `max_words`, the answer is cut (`cut`: no EOS, and the model should not learn
    to stop mid-answer); callers count these.
    """
    if tokenization not in TOKENIZATIONS:
        raise ValueError(f"tokenization must be one of {TOKENIZATIONS}, not {tokenization!r}")
    text = format_prompt(question, template)
    prompt = tokenizer.encode(text, bos=True)
    if len(prompt) >= max_words:
        return None
    if tokenization == "joint":
        tokens = tokenizer.encode(text + answer, bos=True, eos=eos)
        labels = [IGNORE_INDEX] * len(prompt) + tokens[len(prompt):]
    else:
        target = tokenizer.encode(answer, bos=False, eos=eos)
        tokens, labels = prompt + target, [IGNORE_INDEX] * len(prompt) + target
    return Example(torch.tensor(tokens[:max_words]), torch.tensor(labels[:max_words]), len(tokens) > max_words)
