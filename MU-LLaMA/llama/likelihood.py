"""How likely a model finds given continuations of a prompt: multiple-choice options scored by their
log-probability as the answer, with no generated text to parse (evaluation/muchomusic.py's likelihood mode).

Each prompt runs once; its cache is then repeated for each of its continuations, which run together in one
batch, so a four-option question costs one prompt and four short continuations."""

from collections.abc import Mapping, Sequence

import torch

from .kv_cache import KVCache
from .model import Transformer


@torch.inference_mode()
def continuation_logprobs(model: Transformer, prompts: Sequence[Sequence[int]],
                          continuations: Sequence[Sequence[Sequence[int]]],
                          adapters: Mapping[int, torch.Tensor] | None = None, filler: int = 0) -> list[list[float]]:
    """The summed log-probability of each continuation's tokens after its prompt: [len(prompts)][k].

    prompts: token ids (BOS included); continuations: k non-empty lists of ids for every prompt, tokenised on
    their own (so the boundary is exact). adapters: {layer: [len(prompts), dim]} (see Transformer.forward).
    filler: the id written into padding slots, which nothing reads."""
    k = len(continuations[0]) if continuations else 0
    if len(continuations) != len(prompts) or any(len(c) != k or not all(c) for c in continuations):
        raise ValueError("every prompt needs the same number of continuations, none of them empty")
    if not prompts or min(map(len, prompts)) == 0:
        raise ValueError("every prompt needs at least one token (its BOS)")
    device, dtype = model.tok_embeddings.weight.device, model.tok_embeddings.weight.dtype
    longest = max(map(len, prompts))
    flat = [list(c) for options in continuations for c in options]
    width = max(map(len, flat))
    if longest + width > model.args.max_seq_len:
        raise ValueError(f"a prompt of {longest} tokens and an option of {width} exceed the model's context "
                         f"({model.args.max_seq_len} tokens)")
    pads = [longest - len(p) for p in prompts]
    tokens = torch.tensor([[filler] * n + list(p) for n, p in zip(pads, prompts, strict=True)], device=device)
    cache = KVCache(model.args, len(prompts), longest, device=device, dtype=dtype,
                    pad=torch.tensor(pads, device=device) if any(pads) else None)
    first = model(tokens, cache=cache, adapters=adapters or None, last_only=True)[:, -1].log_softmax(-1)
    options = torch.tensor([c + [filler] * (width - len(c)) for c in flat], device=device)
    wide = cache.repeat_rows(k, width)
    wide_adapters = {layer: a.repeat_interleave(k, 0) for layer, a in adapters.items()} if adapters else None
    later = model(options, cache=wide, adapters=wide_adapters).log_softmax(-1)  # [B * k, width, vocab]
    # an option's first token is predicted at the prompt's last position, each later one by the token before it
    per_token = torch.cat([first.repeat_interleave(k, 0).gather(1, options[:, :1]),
                           later[:, :-1].gather(2, options[:, 1:, None])[..., 0]], dim=1)
    lengths = torch.tensor([len(c) for c in flat], device=device)
    kept = torch.arange(width, device=device)[None] < lengths[:, None]
    sums = (per_token.double() * kept).sum(dim=1)
    return sums.view(len(prompts), k).tolist()
