"""Batched sampling with a KV cache sized to the request.

Prompts of different lengths are left-padded and prefilled in one forward pass; padded slots are
masked and rotary positions start after them, so each row decodes exactly as it would alone.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from .model import KVCache, Transformer
from .tokenizer import Tokenizer


@dataclass
class Completion:
    tokens: list[int]  # generated ids, without the prompt and without the stop token
    text: str


def sample_top_p(probs: torch.Tensor, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Nucleus sampling: keep the most likely tokens whose preceding cumulative mass is <= top_p."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs[mass_before > top_p] = 0.0
    sorted_probs /= sorted_probs.sum(dim=-1, keepdim=True)
    choice = torch.multinomial(sorted_probs, 1, generator=generator)
    return order.gather(-1, choice).squeeze(-1)


def next_token(logits: torch.Tensor, temperature: float, top_p: float,
               generator: torch.Generator | None) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(dim=-1)
    return sample_top_p(torch.softmax(logits / temperature, dim=-1), top_p, generator)


@torch.inference_mode()
def generate(model: Transformer, tokenizer: Tokenizer, prompts: Sequence[str | Sequence[int]], *,
             max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
             seed: int | None = None, adapters: Mapping[int, torch.Tensor] | None = None,
             stop_ids: Sequence[int] | None = None,
             on_token: Callable[[int, list[int | None]], None] | None = None) -> list[Completion]:
    """Continue each prompt until it emits a stop token or `max_new_tokens` tokens.

    prompts: strings (encoded with BOS) or lists of token ids.
    temperature: 0 is greedy; otherwise softmax(logits / T) then nucleus sampling with `top_p`.
    seed: seeds a private generator, so the same call gives the same samples.
    adapters: {layer: [B, dim]} adapter tokens (MU-LLaMA's music input), see Transformer.forward.
    stop_ids: default `[tokenizer.eos_id]`; each sequence stops at its own.
    on_token(step, tokens): called after every step with each row's new token (None once finished).
    """
    ids = [tokenizer.encode(p, bos=True) if isinstance(p, str) else list(p) for p in prompts]
    if not ids or min(map(len, ids)) == 0:
        raise ValueError("generate needs at least one non-empty prompt")
    device = model.tok_embeddings.weight.device
    longest = max(map(len, ids))
    pad_lens = [longest - len(p) for p in ids]
    stop = torch.tensor(list(stop_ids) if stop_ids is not None else [tokenizer.eos_id], device=device)
    filler = max(tokenizer.pad_id, 0)
    tokens = torch.tensor([[filler] * n + p for n, p in zip(pad_lens, ids, strict=True)], device=device)
    pad = torch.tensor(pad_lens, device=device) if any(pad_lens) else None
    cache = KVCache(model.args, len(ids), longest + max_new_tokens, device=device,
                    dtype=model.tok_embeddings.weight.dtype, pad=pad)
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)

    out = torch.full((len(ids), max_new_tokens), filler, device=device)
    finished = torch.zeros(len(ids), dtype=torch.bool, device=device)
    logits = model(tokens, cache=cache, adapters=adapters, last_only=True)[:, -1]
    steps = 0
    for step in range(max_new_tokens):
        token = next_token(logits, temperature, top_p, generator)
        token = torch.where(finished, filler, token)
        out[:, step] = token
        steps = step + 1
        if on_token is not None:
            on_token(step, [None if f else t for f, t in zip(finished.tolist(), token.tolist(), strict=True)])
        finished |= torch.isin(token, stop)
        if step + 1 == max_new_tokens or bool(finished.all()):
            break
        logits = model(token[:, None], cache=cache, adapters=adapters, last_only=True)[:, -1]

    completions = []
    stop_set = set(stop.tolist())
    for row in out[:, :steps].tolist():
        end = next((i for i, t in enumerate(row) if t in stop_set), len(row))
        completions.append(Completion(tokens=row[:end], text=tokenizer.decode(row[:end])))
    return completions
