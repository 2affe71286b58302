"""Batched sampling with a KV cache sized to the request.

Prompts of different lengths are left-padded and prefilled in one forward pass; padded slots are
masked and rotary positions start after them, so each row decodes exactly as it would alone.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from .model import KVCache, Transformer
from .tokenizer import Tokenizer


@dataclass
class Completion:
    tokens: list[int]  # generated ids, without the prompt and without the stop token
    text: str
    # {step: [dim]} last-layer state before the final norm at the position that predicted the
    # token of that step, for the steps whose token is in `hidden_for` (MuMu-LLaMA's [AUD] tokens)
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)


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
             stop_ids: Sequence[int] | None = None, stop: Callable[[list[int]], bool] | None = None,
             hidden_for: Sequence[int] = (),
             on_token: Callable[[int, list[int | None]], None] | None = None) -> list[Completion]:
    """Continue each prompt until it emits a stop token or `max_new_tokens` tokens.

    prompts: strings (encoded with BOS) or lists of token ids.
    temperature: 0 is greedy; otherwise softmax(logits / T) then nucleus sampling with `top_p`.
    seed: seeds a private generator, so the same call gives the same samples.
    adapters: {layer: [B, dim]} adapter tokens (MU-LLaMA's music input), see Transformer.forward.
    stop_ids: default `[tokenizer.eos_id]`; each sequence stops at its own (the stop token is not kept).
    stop: a rule on a row's ids so far (prompt and generated): True stops the row after this token,
      which is kept (MuMu-LLaMA's original stops when the last three decode to "\n###").
    hidden_for: token ids whose pre-norm last-layer states to keep (Completion.hidden).
    on_token(step, tokens): called after every step with each row's new token (None once finished).
    """
    ids = [tokenizer.encode(p, bos=True) if isinstance(p, str) else list(p) for p in prompts]
    if not ids or min(map(len, ids)) == 0:
        raise ValueError("generate needs at least one non-empty prompt")
    device = model.tok_embeddings.weight.device
    longest = max(map(len, ids))
    pad_lens = [longest - len(p) for p in ids]
    stop_tokens = torch.tensor(list(stop_ids) if stop_ids is not None else [tokenizer.eos_id], device=device,
                               dtype=torch.long)
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
    keep = torch.tensor(list(hidden_for), device=device, dtype=torch.long)
    hidden = [{} for _ in ids]
    logits, states = model(tokens, cache=cache, adapters=adapters, last_only=True, hidden=True)
    steps = 0
    ends = [max_new_tokens] * len(ids)  # where each row's kept tokens end
    for step in range(max_new_tokens):
        token = next_token(logits[:, -1], temperature, top_p, generator)
        token = torch.where(finished, filler, token)
        out[:, step] = token
        steps = step + 1
        new = [None if f else t for f, t in zip(finished.tolist(), token.tolist(), strict=True)]
        if on_token is not None:
            on_token(step, new)
        if len(keep):
            for row in torch.isin(token, keep).logical_and(~finished).nonzero()[:, 0].tolist():
                hidden[row][step] = states[row, -1]
        stopped = torch.isin(token, stop_tokens).tolist()
        for row, t in enumerate(new):
            if t is not None and stopped[row]:
                ends[row] = step
            elif t is not None and stop is not None and stop(ids[row] + out[row, :step + 1].tolist()):
                ends[row], stopped[row] = step + 1, True
        finished |= torch.tensor(stopped, device=device)
        if step + 1 == max_new_tokens or bool(finished.all()):
            break
        logits, states = model(token[:, None], cache=cache, adapters=adapters, last_only=True, hidden=True)

    completions = []
    for row, end, kept in zip(out[:, :steps].tolist(), ends, hidden, strict=True):
        completions.append(Completion(tokens=row[:end], text=tokenizer.decode(row[:end]),
                                      hidden={k: v for k, v in kept.items() if k < end}))
    return completions
