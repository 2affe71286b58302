import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from llama import KVCache, ModelArgs
from llama.checkpoints.hf import hf_config, meta_to_hf
from llama.testing.tiny import random_model, tiny_args


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def as_transformers(model) -> LlamaForCausalLM:
    """The same weights in transformers' independent implementation (rotate-half rotary)."""
    config = LlamaConfig(**{k: v for k, v in hf_config(model.args).items() if k != "architectures"})
    hf = LlamaForCausalLM(config).eval()
    missing, unexpected = hf.load_state_dict(meta_to_hf(model.state_dict(), model.args), strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}
    return hf


@pytest.mark.parametrize("n_kv_heads", [None, 2, 1], ids=["mha", "gqa", "mqa"])
@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_logits_match_transformers(n_kv_heads, tied):
    model = random_model(tiny_args(n_kv_heads=n_kv_heads, tie_embeddings=tied, rope_theta=500.0))
    hf = as_transformers(model)
    tokens = torch.randint(0, model.args.vocab_size, (3, 21))
    with torch.no_grad():
        ours, theirs = model(tokens), hf(tokens).logits
    assert ours.shape == (3, 21, model.args.vocab_size)
    assert relative_error(ours, theirs) <= 1e-5


def test_ffn_width_follows_meta_rule():
    assert ModelArgs().ffn_hidden_dim == 11008  # LLaMA-2-7B
    llama2_70b = ModelArgs(dim=8192, n_heads=64, n_kv_heads=8, ffn_dim_multiplier=1.3, multiple_of=4096)
    assert llama2_70b.ffn_hidden_dim == 28672
    assert ModelArgs(dim=576, hidden_dim=1536).ffn_hidden_dim == 1536


def test_params_json_unknown_key_is_an_error():
    with pytest.raises(ValueError, match="unknown keys.*n_layer"):
        ModelArgs.from_params({"dim": 64, "n_layer": 2})
    with pytest.raises(ValueError, match="scaled rotary"):
        ModelArgs.from_params({"dim": 64, "use_scaled_rope": True})


def test_cached_decoding_equals_full_forward():
    model = random_model(tiny_args(n_kv_heads=2))
    tokens = torch.randint(0, model.args.vocab_size, (2, 17))
    with torch.no_grad():
        full = model(tokens)
        cache = KVCache(model.args, 2, 17)
        # a prefill chunk, a second chunk at a non-zero start, then one token at a time
        steps = [model(tokens[:, :6], cache=cache), model(tokens[:, 6:10], cache=cache)]
        steps += [model(tokens[:, i:i + 1], cache=cache) for i in range(10, 17)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_left_padded_rows_equal_unpadded():
    model = random_model(tiny_args())
    short, long = torch.randint(1, 97, (1, 5)), torch.randint(1, 97, (1, 9))
    batch = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1), long])
    with torch.no_grad():
        cache = KVCache(model.args, 2, 10, pad=torch.tensor([4, 0]))
        padded = model(batch, cache=cache)
        next_token = torch.randint(1, 97, (2, 1))
        padded_step = model(next_token, cache=cache)
        alone = model(torch.cat([short, next_token[:1]], 1))
    assert torch.allclose(padded[0, 4:], alone[0, :5], atol=1e-5)
    assert torch.allclose(padded_step[0, 0], alone[0, 5], atol=1e-5)


def test_kv_cache_is_sized_to_the_request_in_model_dtype():
    args = tiny_args()
    cache = KVCache(args, batch_size=2, max_len=30, dtype=torch.bfloat16)
    assert cache.k.shape == (args.n_layers, 2, args.kv_heads, 30, args.head_dim)
    assert cache.k.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="max_seq_len"):
        KVCache(args, 1, args.max_seq_len + 1)


def test_adapter_with_zero_gates_changes_nothing_and_open_gates_do():
    model = random_model(tiny_args())
    tokens = torch.randint(0, 97, (2, 7))
    adapter = torch.randn(2, 2, model.args.dim)  # one token for each of the last 2 layers
    adapters = {1: adapter[:, 0], 2: adapter[:, 1]}
    with torch.no_grad():
        plain = model(tokens)
        assert torch.equal(model(tokens, adapters=adapters), plain)
        model.layers[0].attention.gate.fill_(1.0)  # not an adapted layer: still no effect
        assert torch.equal(model(tokens, adapters=adapters), plain)
        model.layers[2].attention.gate.fill_(0.5)
        gated = model(tokens, adapters=adapters)
    assert not torch.allclose(gated, plain, atol=1e-3)


def test_adapter_adds_gated_value_at_every_position():
    """Layer output with the adapter = without it + wo(tanh(gate) * wv(adapter)), at all positions."""
    args = tiny_args(n_layers=1, n_kv_heads=2)
    model = random_model(args)
    attn = model.layers[0].attention
    with torch.no_grad():
        attn.gate.copy_(torch.randn_like(attn.gate))
        x = torch.randn(2, 5, args.dim)
        no_rotation = (torch.ones(1, 5, 1, args.head_dim // 2), torch.zeros(1, 5, 1, args.head_dim // 2))
        adapter = torch.randn(2, args.dim)
        delta = attn(x, no_rotation, "causal", None, adapter) - attn(x, no_rotation, "causal", None, None)
        value = (adapter @ attn.wv.weight.T).view(2, args.kv_heads, args.head_dim)
        value = value.repeat_interleave(args.n_heads // args.kv_heads, dim=1)
        expected = (torch.tanh(attn.gate.view(1, -1, 1)) * value).reshape(2, -1) @ attn.wo.weight.T
    assert torch.allclose(delta, expected[:, None].expand_as(delta), atol=1e-5)


def test_lora_and_bias_keys_follow_upstream_names_and_start_as_identity():
    args = tiny_args(w_bias=True, w_lora=True, lora_rank=4)
    model = random_model(args)
    keys = set(model.state_dict())
    for name in ("wq", "wk", "wv", "wo"):
        assert f"layers.0.attention.lora_{name}_l1.weight" in keys
        assert model.state_dict()[f"layers.0.attention.lora_{name}_l2.weight"].abs().sum() == 0
    for name in ("w1", "w2", "w3"):
        assert f"layers.0.feed_forward.lora_{name}_l1.weight" in keys
        assert f"layers.0.feed_forward.{name}.bias" in keys
    assert {"layers.0.attention.wq.bias", "layers.0.attention.wo.bias"} <= keys
    assert not {"layers.0.attention.wk.bias", "layers.0.attention.wv.bias"} & keys
    assert model.state_dict()["layers.0.attention.gate"].shape == (1, args.n_heads, 1, 1)

    plain = random_model(tiny_args())
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k in plain.state_dict()})
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.zero_()
        tokens = torch.randint(0, 97, (1, 6))
        assert torch.allclose(model(tokens), plain(tokens), atol=1e-6)
        model.layers[1].feed_forward.lora_w2_l2.weight.normal_()
        assert not torch.allclose(model(tokens), plain(tokens), atol=1e-4)


def test_slot_cache_decodes_rows_at_their_own_lengths():
    """Rows at different lengths in one SlotCache decode as each request alone (continuous batching)."""
    from llama.kv_cache import SlotCache

    model = random_model(tiny_args(n_kv_heads=2))
    seqs = [torch.randint(1, 97, (1, n)) for n in (3, 8, 5)]
    with torch.no_grad():
        cache = SlotCache(model.args, 3, 16)
        for row, seq in enumerate(seqs):
            own = KVCache(model.args, 1, seq.shape[1] - 1)
            model(seq[:, :-1], cache=own)
            cache.fill(row, own.k[:, 0], own.v[:, 0])
        cache.release(2)  # an idle row: it does not move and does not disturb the others
        step = model(torch.cat([seqs[0][:, -1:], seqs[1][:, -1:], seqs[2][:, -1:]]), cache=cache)
        assert cache.lengths.tolist() == [3, 8, 0]
        for row in (0, 1):
            alone = model(seqs[row])[0, -1]
            assert torch.allclose(step[row, 0], alone, atol=1e-5)
