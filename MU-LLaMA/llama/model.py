"""The LLaMA-2 transformer, with Meta's parameter names.

Grouped-query attention, Meta's interleaved rotary convention, optional biases and LoRA exactly as
the original MU-LLaMA (rank-r, no scaling, `lora_<name>_l1/_l2` keys), a gated adapter input for any
layer; the KV caches are in kv_cache.py. No file I/O and no tokenization here.
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from .kv_cache import KVCache, SlotCache, causal_mask
from .lora import LoRAProjections, linear

# params.json keys that describe how Meta ran the model, not its shape: accepted and ignored.
_IGNORED_PARAMS = {"max_batch_size"}


@dataclass
class ModelArgs:
    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int | None = None
    vocab_size: int = 32000
    multiple_of: int = 256
    ffn_dim_multiplier: float | None = None
    # Explicit FFN width, for models (e.g. SmolLM2) whose width no (multiple_of, multiplier) gives.
    hidden_dim: int | None = None
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_seq_len: int = 4096
    tie_embeddings: bool = False
    # MU-LLaMA's finetune phase: biases on wq, wo, w1, w2, w3 and rank-r LoRA on all seven.
    w_bias: bool = False
    w_lora: bool = False
    lora_rank: int = 16

    @classmethod
    def from_params(cls, params: dict, **overrides) -> "ModelArgs":
        """Build from a Meta `params.json` dict; unknown keys are an error, not silently dropped."""
        params = {k: v for k, v in {**params, **overrides}.items() if k not in _IGNORED_PARAMS}
        if params.pop("use_scaled_rope", False):
            raise ValueError("params.json asks for LLaMA-3.1 scaled rotary embeddings, which this model lacks")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown keys in params.json: {unknown}; known keys: {sorted(known)}")
        return cls(**params)

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def ffn_hidden_dim(self) -> int:
        if self.hidden_dim is not None:
            return self.hidden_dim
        hidden = int(2 * 4 * self.dim / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 whatever the activation dtype, as Meta's reference does.
        return F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).type_as(x) * self.weight


def rotary_frequencies(head_dim: int, theta: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """The head_dim / 2 rotary frequencies theta ** (-2i / head_dim) (Meta's `rope.freqs`)."""
    return 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=dtype) / head_dim)


def rotary_embedding(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) of position * freq for `positions` [B, S]: each float32 [B, S, 1, head_dim / 2]."""
    angles = positions.float()[..., None] * rotary_frequencies(head_dim, theta, positions.device)
    return angles.cos()[:, :, None], angles.sin()[:, :, None]


def apply_rotary(x: torch.Tensor, rotation: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate adjacent pairs (x[2i], x[2i+1]) by the angles of `rotation`: Meta's convention, which
    `consolidated.*.pth` expects (HF checkpoints are converted to it on load). Meta writes it as a product of
    complex numbers; here it is the same product in real arithmetic, which compilers take whole."""
    cos, sin = rotation
    pairs = x.float().unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2).type_as(x)


def is_added_parameter(name: str) -> bool:
    """Parameters no base LLaMA checkpoint holds: adapter gates, MU-LLaMA's biases and LoRA (the
    `gates`, `biases` and `lora` groups of `Transformer.parameter_groups`)."""
    return name.endswith(".gate") or name.endswith(".bias") or ".lora_" in name


class Attention(LoRAProjections):
    projections = ("wq", "wk", "wv", "wo")

    def __init__(self, args: ModelArgs, layer_id: int):
        super().__init__()
        self.layer_id = layer_id
        self.n_heads, self.n_kv_heads, self.head_dim = args.n_heads, args.kv_heads, args.head_dim
        q_dim, kv_dim = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        self.wq = nn.Linear(args.dim, q_dim, bias=args.w_bias)
        self.wk = nn.Linear(args.dim, kv_dim, bias=False)
        self.wv = nn.Linear(args.dim, kv_dim, bias=False)
        self.wo = nn.Linear(q_dim, args.dim, bias=args.w_bias)
        # One gate per head; tanh(0) = 0, so a fresh adapter leaves the model unchanged.
        self.gate = nn.Parameter(torch.zeros(1, self.n_heads, 1, 1))
        if args.w_lora:
            self._add_lora(("wq", "wk", "wv", "wo"), args.lora_rank)

    def forward(self, x, rotation, mask, cache: KVCache | SlotCache | None, adapter: torch.Tensor | None):
        B, S, _ = x.shape
        q = apply_rotary(self._project("wq", x).view(B, S, self.n_heads, self.head_dim), rotation)
        k = apply_rotary(self._project("wk", x).view(B, S, self.n_kv_heads, self.head_dim), rotation)
        v = self._project("wv", x).view(B, S, self.n_kv_heads, self.head_dim)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if cache is not None:
            k, v = cache.update(self.layer_id, k, v)
        is_causal = isinstance(mask, str)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if is_causal else mask,
                                             is_causal=is_causal, enable_gqa=self.n_kv_heads != self.n_heads)
        if adapter is not None:
            # The adapter is one extra key that every query attends to with weight 1, so only its
            # value matters: the frozen wv (no LoRA) of the adapter token, gated per head, added at
            # every position.
            value = F.linear(adapter.to(self.wv.weight.dtype), self.wv.weight)
            value = value.view(B, self.n_kv_heads, 1, self.head_dim)
            value = value.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
            out = out + torch.tanh(self.gate).to(out.dtype) * value.to(out.dtype)
        return self._project("wo", out.transpose(1, 2).reshape(B, S, -1))


class FeedForward(LoRAProjections):
    projections = ("w1", "w2", "w3")

    def __init__(self, args: ModelArgs):
        super().__init__()
        hidden = args.ffn_hidden_dim
        self.w1 = nn.Linear(args.dim, hidden, bias=args.w_bias)
        self.w2 = nn.Linear(hidden, args.dim, bias=args.w_bias)
        self.w3 = nn.Linear(args.dim, hidden, bias=args.w_bias)
        if args.w_lora:
            self._add_lora(("w1", "w2", "w3"), args.lora_rank)

    def forward(self, x):
        return self._project("w2", F.silu(self._project("w1", x)) * self._project("w3", x))


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs, layer_id: int):
        super().__init__()
        self.attention = Attention(args, layer_id)
        self.feed_forward = FeedForward(args)
        self.attention_norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, eps=args.norm_eps)

    def forward(self, x, rotation, mask, cache, adapter):
        h = x + self.attention(self.attention_norm(x), rotation, mask, cache, adapter)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(TransformerBlock(args, i) for i in range(args.n_layers))
        self.norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)
        if args.tie_embeddings:
            self.output.weight = self.tok_embeddings.weight
        self.checkpointing = False  # recompute each block in backward (training memory for compute)
        # k: only the last k rows of a tied embedding train, and only as rows of the head (the demo MuMu-LLaMA's
        # [AUD] rows): no gradient flows through the input, so backward stops at the first layer that trains
        # something, and the head's weight gradient is computed for those rows only
        self.trained_rows: int | None = None

    def parameter_groups(self) -> dict[str, list[str]]:
        """The parameters no base checkpoint holds or that a phase may train, by the modules that own
        them: `gates` (one per attention), `norms`, `biases` and `lora` (MU-LLaMA's finetune additions)."""
        groups = {"gates": [], "norms": [], "biases": [], "lora": []}
        for name, module in self.named_modules():
            prefix = f"{name}." if name else ""
            if isinstance(module, RMSNorm):
                groups["norms"].append(prefix + "weight")
            if isinstance(module, Attention):
                groups["gates"].append(prefix + "gate")
            if isinstance(module, LoRAProjections):
                for group, names in module.owned_groups().items():
                    groups[group] += [prefix + n for n in names]
        return groups

    def forward(self, tokens: torch.Tensor, cache: KVCache | SlotCache | None = None,
                adapters: Mapping[int, torch.Tensor] | None = None, last_only: bool = False,
                hidden: bool = False):
        """Logits [B, S, vocab] (fp32) for `tokens` [B, S].

        cache: continue the requests held in `cache` (KVCache: one length for all rows; SlotCache:
          one token per row, each at its own length).
        adapters: {layer index: [B, dim]}, the adapter token each of those layers attends to.
        last_only: compute logits for the last position only (what decoding needs).
        hidden: also return the last layer's output before the final norm, [B, S or 1, dim]
          (MuMu-LLaMA's output projector reads it at the [AUD] positions).
        """
        S = tokens.shape[1]
        if cache is None:
            positions = torch.arange(S, device=tokens.device)[None]
            mask = causal_mask(positions[0], S)
        else:
            positions, mask = cache.layout(S, tokens.device)
        rotation = rotary_embedding(positions, self.args.head_dim, self.args.rope_theta)

        h = self.tok_embeddings(tokens)
        if self.trained_rows:
            h = h.detach()
        for i, layer in enumerate(self.layers):
            layer_adapter = adapters.get(i) if adapters else None
            if self.checkpointing and self.training and torch.is_grad_enabled():
                h = torch.utils.checkpoint.checkpoint(layer, h, rotation, mask, cache, layer_adapter,
                                                      use_reentrant=False)
            else:
                h = layer(h, rotation, mask, cache, layer_adapter)
        if cache is not None:
            cache.advance(S)
        if last_only:
            h = h[:, -1:]
        logits = self._head(self.norm(h))
        return (logits, h) if hidden else logits

    def decode(self, tokens: torch.Tensor, cache: SlotCache, adapters: Mapping[int, torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoding step: one token per row, `tokens` [B], each row of `cache` at its own length ->
        (logits [B, vocab] fp32, pre-norm last-layer states [B, dim]). One function of fixed shapes for a whole
        run, so that torch.compile takes it whole (compiled.py)."""
        logits, h = self(tokens[:, None], cache=cache, adapters=adapters, last_only=True, hidden=True)
        return logits[:, -1], h[:, -1]

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        k = self.trained_rows
        if not k:
            return linear(x, self.output).float()
        weight = self.output.weight
        return torch.cat([F.linear(x, weight[:-k].detach()), F.linear(x, weight[-k:])], dim=-1).float()
