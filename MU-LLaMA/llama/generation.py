"""Batched sampling with continuous batching: a fixed number of rows decode together, and a row whose
prompt finished takes the next waiting prompt at once.

Prompts that join together are left-padded and prefilled in one forward pass (padded slots masked,
rotary positions after them); each then decodes in its own row of a SlotCache, from slot 0 at its
own length, so each prompt decodes exactly as it would alone.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from .kv_cache import KVCache, SlotCache
from .model import Transformer
from .tokenizer import Tokenizer

REFILL_FRACTION = 4  # free rows take new prompts once a quarter of the rows are free (see generate)

TEMPERATURE = 0.0  # every interface's default: greedy, so that the same request gives the same answer



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
               generator: torch.Generator | None, top_k: int = 0) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k:
        logits = logits.masked_fill(logits < logits.topk(top_k, dim=-1).values[:, -1:], float("-inf"))
    return sample_top_p(torch.softmax(logits, dim=-1), top_p, generator)


@torch.inference_mode()
def generate(model: Transformer, tokenizer: Tokenizer, prompts: Sequence[str | Sequence[int]], *,
             max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
             seed: int | None = None, adapters: Mapping[int, torch.Tensor] | None = None,
             stop_ids: Sequence[int] | None = None, stop: Callable[[list[int]], bool] | None = None,
             hidden_for: Sequence[int] = (),
             on_token: Callable[[int, list[int | None]], None] | None = None,
             batch_size: int | None = None, top_k: int = 0,
             on_done: Callable[[int, Completion], None] | None = None) -> list[Completion]:
    """Continue each prompt until it emits a stop token or `max_new_tokens` tokens.

    prompts: strings (encoded with BOS) or lists of token ids.
    temperature: 0 is greedy; otherwise softmax(logits / T) then nucleus sampling with `top_p`, among
      the `top_k` most likely tokens when top_k > 0.
    seed: seeds a private generator, so the same call gives the same samples.
    adapters: {layer: [len(prompts), dim]} adapter tokens (MU-LLaMA's music input), see Transformer.forward.
    stop_ids: default `[tokenizer.eos_id]`; each sequence stops at its own (the stop token is not kept).
    stop: a rule on a row's ids so far (prompt and generated): True stops the row after this token,
      which is kept (MuMu-LLaMA's original stops when the last three decode to "\n###").
    hidden_for: token ids whose pre-norm last-layer states to keep (Completion.hidden).
    on_token(step, tokens): called after every step with each prompt's new token (None: not decoding).
    batch_size: prompts decoded at once (default: all). Continuous batching: when one finishes, the
      next waiting prompt is prefilled and takes its row at the next step, so no row idles while
      prompts wait. Greedy answers do not depend on it; sampled ones do (rows share the generator).
    on_done(index, completion): called as each prompt finishes, in the order they finish.
    """
    ids = [tokenizer.encode(p, bos=True) if isinstance(p, str) else list(p) for p in prompts]
    if not ids or min(map(len, ids)) == 0:
        raise ValueError("generate needs at least one non-empty prompt")
    device, dtype = model.tok_embeddings.weight.device, model.tok_embeddings.weight.dtype
    rows = min(batch_size or len(ids), len(ids))
    stop_tokens = set(stop_ids if stop_ids is not None else [tokenizer.eos_id])
    keep = set(hidden_for)
    filler = max(tokenizer.pad_id, 0)
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    cache = SlotCache(model.args, rows, max(map(len, ids)) + max_new_tokens, device=device, dtype=dtype)
    row_adapters = {layer: a.new_zeros(rows, a.shape[-1]) for layer, a in (adapters or {}).items()}
    logits = states = None  # per row: the next token's logits, the state before the final norm
    request: list[int | None] = [None] * rows  # the prompt each row decodes
    waiting = 0  # prompts[waiting:] have not started
    # A prefill reads every weight once, as a decoding step does: prompts join in groups of at least
    # `refill`, so that a few rows idle for a few steps rather than each prompt costing a step of its own.
    refill = max(1, rows // REFILL_FRACTION)
    generated: list[list[int]] = [[] for _ in ids]
    hidden: list[dict[int, torch.Tensor]] = [{} for _ in ids]
    completions: list[Completion | None] = [None] * len(ids)
    step = 0
    while True:
        free = [r for r in range(rows) if request[r] is None]
        joining = []
        if len(free) == rows or len(free) >= min(refill, len(ids) - waiting):
            joining = list(zip(free, range(waiting, len(ids)), strict=False))
            waiting += len(joining)
        if joining:
            new_rows, new = map(list, zip(*joining, strict=True))
            for layer, a in row_adapters.items():
                a[new_rows] = adapters[layer][new].to(a)
            first_logits, first_states = prefill(model, [ids[i] for i in new], filler, cache, new_rows,
                                                 {layer: adapters[layer][new] for layer in row_adapters})
            if logits is None:  # sized by the first prefill: a head may have rows beyond args.vocab_size
                logits = first_logits.new_zeros(rows, first_logits.shape[-1])
                states = first_states.new_zeros(rows, first_states.shape[-1])
            logits[new_rows], states[new_rows] = first_logits, first_states
            for row, i in joining:
                request[row] = i
        active = [r for r in range(rows) if request[r] is not None]
        if not active:
            break
        token = torch.full((rows,), filler, device=device)
        token[active] = next_token(logits[active], temperature, top_p, generator, top_k)
        chosen = token.tolist()
        new_tokens: list[int | None] = [None] * len(ids)
        for row in active:
            i, t = request[row], chosen[row]
            new_tokens[i] = t
            if t in stop_tokens:
                finished = True
            else:
                if t in keep:
                    hidden[i][len(generated[i])] = states[row].clone()  # the row may take another prompt
                generated[i].append(t)
                finished = len(generated[i]) == max_new_tokens or (stop is not None and stop(ids[i] + generated[i]))
            if finished:
                completions[i] = Completion(generated[i], tokenizer.decode(generated[i]), hidden[i])
                if on_done is not None:
                    on_done(i, completions[i])
                request[row] = None
                cache.release(row)
        if on_token is not None:
            on_token(step, new_tokens)
        step += 1
        if all(r is None for r in request):
            continue  # the next prompts join, or none are left
        feed = torch.tensor([chosen[r] if request[r] is not None else filler for r in range(rows)], device=device)
        logits, states = model.decode(feed, cache, row_adapters or None)
    return completions


def prefill(model: Transformer, prompts: list[list[int]], filler: int, cache: SlotCache, rows: list[int],
            adapters: Mapping[int, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `prompts` (left-padded into one batch) and place their keys in `rows` of `cache`; returns the
    logits and pre-norm states at each prompt's last position."""
    device, dtype = model.tok_embeddings.weight.device, model.tok_embeddings.weight.dtype
    longest = max(map(len, prompts))
    pad_lens = [longest - len(p) for p in prompts]
    tokens = torch.tensor([[filler] * n + p for n, p in zip(pad_lens, prompts, strict=True)], device=device)
    pad = torch.tensor(pad_lens, device=device) if any(pad_lens) else None
    own = KVCache(model.args, len(prompts), longest, device=device, dtype=dtype, pad=pad)
    logits, states = model(tokens, cache=own, adapters=adapters or None, last_only=True, hidden=True)
    for j, (row, n) in enumerate(zip(rows, pad_lens, strict=True)):
        cache.fill(row, own.k[:, j, :, n:], own.v[:, j, :, n:])
    return logits[:, -1], states[:, -1]
