"""Key/value caches of the transformer's attention: one per generation request (KVCache, every row at
the same length, optionally left-padded) or one shared by requests of different lengths (SlotCache,
continuous batching). Both are allocated once, to the tokens they will hold. A SlotCache keeps one shape for
a whole run (positions and masks are tensors, attention reads every slot, the empty ones masked), so one
compiled decoding step serves every token of it."""

import torch


def allocate(args, rows: int, max_len: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Zeroed keys and values [layers, rows, kv_heads, max_len, head_dim] for a model of `args` (ModelArgs)."""
    if max_len > args.max_seq_len:
        raise ValueError(f"a request of {max_len} tokens exceeds max_seq_len={args.max_seq_len}")
    shape = (args.n_layers, rows, args.kv_heads, max_len, args.head_dim)
    return torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype)


class KVCache:
    """Keys and values of one generation request, sized to exactly the tokens it will hold.

    `pad` [B] is the number of left-padding slots of each row (None: no padding); padded slots
    are never attended to and rotary positions start after them.
    """

    def __init__(self, args, batch_size: int, max_len: int, *, device=None, dtype=None,
                 pad: torch.Tensor | None = None):
        self.k, self.v = allocate(args, batch_size, max_len, device, dtype)
        self.pad = pad
        self.length = 0

    def layout(self, S: int, device) -> tuple[torch.Tensor, torch.Tensor | str | None]:
        """Rotary positions [B|1, S] of the next S tokens and their attention mask (see causal_mask)."""
        slots = torch.arange(self.length, self.length + S, device=device)
        if self.pad is None:
            return slots[None], causal_mask(slots, self.length + S)
        positions = (slots[None] - self.pad[:, None]).clamp(min=0)
        return positions, padded_mask(slots, self.length + S, self.pad)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + k.shape[2]
        self.k[layer, :, :, self.length:end] = k
        self.v[layer, :, :, self.length:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, S: int) -> None:
        self.length += S

    def repeat_rows(self, times: int, room: int) -> "KVCache":
        """A cache holding each row of this one `times` times in a row, with room for `room` more tokens: one
        prefill of a prompt shared by several continuations of it (scoring a question's options, likelihood.py)."""
        wide = KVCache.__new__(KVCache)
        shape = (*self.k.shape[:1], self.k.shape[1] * times, *self.k.shape[2:3], self.length + room, self.k.shape[4])
        wide.k, wide.v = self.k.new_zeros(shape), self.v.new_zeros(shape)
        wide.k[:, :, :, :self.length] = self.k[:, :, :, :self.length].repeat_interleave(times, dim=1)
        wide.v[:, :, :, :self.length] = self.v[:, :, :, :self.length].repeat_interleave(times, dim=1)
        wide.pad = None if self.pad is None else self.pad.repeat_interleave(times)
        wide.length = self.length
        return wide


class SlotCache:
    """Keys and values of a decoding batch whose rows hold requests of different lengths (continuous
    batching): row b holds its request from slot 0 to `lengths[b]`, and a decoding step writes each row
    at its own length. A new request replaces a row's contents with `fill` (keys of its prefill)."""

    def __init__(self, args, rows: int, max_len: int, *, device=None, dtype=None):
        self.k, self.v = allocate(args, rows, max_len, device, dtype)
        self.lengths = torch.zeros(rows, dtype=torch.long, device=device)
        self.busy = torch.zeros(rows, dtype=torch.long, device=device)  # 1 where a row holds a request
        self.rows = torch.arange(rows, device=device)
        self.slots = torch.arange(max_len, device=device)

    def fill(self, row: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Row `row` takes a request whose keys and values, [layers, kv_heads, length, head_dim], are given."""
        n = k.shape[2]
        self.k[:, row, :, :n] = k
        self.v[:, row, :, :n] = v
        self.lengths[row] = n
        self.busy[row] = 1

    def release(self, row: int) -> None:
        """Row `row` holds nothing: it stays at slot 0 (its writes are never read) until `fill`."""
        self.lengths[row] = 0
        self.busy[row] = 0

    def layout(self, S: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        if S != 1:
            raise ValueError("a SlotCache decodes one token per row at a time; prefill with a KVCache")
        return self.lengths[:, None], (self.slots[None, :] <= self.lengths[:, None])[:, None, None]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.k[layer, self.rows, :, self.lengths] = k[:, :, 0]
        self.v[layer, self.rows, :, self.lengths] = v[:, :, 0]
        return self.k[layer], self.v[layer]

    def advance(self, S: int) -> None:
        self.lengths.add_(self.busy * S)


def causal_mask(slots: torch.Tensor, end: int) -> torch.Tensor | str | None:
    """Mask of the queries at `slots` over key slots 0..end-1 when no row is padded: "causal" where
    SDPA's own flag is exact, None where nothing needs masking, else a boolean [1, 1, S, end] tensor."""
    S = len(slots)
    if S == 1:
        return None
    if S == end:
        return "causal"
    keys = torch.arange(end, device=slots.device)
    return (keys[None, :] <= slots[:, None])[None, None]


def padded_mask(slots: torch.Tensor, end: int, pad: torch.Tensor) -> torch.Tensor:
    """Boolean [B, 1, S, end] mask over key slots 0..end-1 of left-padded rows (`pad` [B] slots each)."""
    keys = torch.arange(end, device=slots.device)
    mask = keys[None, :] <= slots[:, None]  # [S, L]
    # A padded query has no real key before it; letting it see itself keeps softmax finite.
    visible = keys[None, None, :] >= pad[:, None, None]
    return (mask & (visible | (keys[None, :] == slots[:, None])))[:, None]
