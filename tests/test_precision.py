"""Precision: what --dtype auto picks, and int8 weight-only quantisation of the backbone (torchao)."""

import pytest
import torch
from test_generation import ByteTokenizer

from llama import generate
from llama import precision as precision_module
from llama.precision import auto_dtype, quantize_int8
from llama.testing.tiny import random_model, tiny_args


def test_auto_dtype_is_bf16_on_gpus_and_on_cpus_with_bf16_units(monkeypatch):
    monkeypatch.delenv("MU_LLAMA_CPU_BF16")  # what the CPU reports (here, a stand-in /proc/cpuinfo) decides
    for flags, expected in (("fpu avx2 avx512f", torch.float32), ("avx512f avx512_bf16", torch.bfloat16),
                            ("amx_bf16 amx_tile", torch.bfloat16)):
        monkeypatch.setattr(precision_module, "cpu_info", lambda flags=flags: f"flags\t\t: {flags}\n")
        assert auto_dtype("cpu") == expected and auto_dtype("cuda:1") == torch.bfloat16, flags
    monkeypatch.setenv("MU_LLAMA_CPU_BF16", "1")  # the override wins over what the CPU reports
    assert auto_dtype("cpu") == torch.bfloat16
    monkeypatch.setattr(precision_module, "cpu_info", lambda: "flags\t\t: avx512_bf16\n")
    monkeypatch.setenv("MU_LLAMA_CPU_BF16", "0")
    assert auto_dtype("cpu") == torch.float32
    monkeypatch.setenv("MU_LLAMA_CPU_BF16", "true")
    with pytest.raises(ValueError, match="MU_LLAMA_CPU_BF16 must be 0 or 1"):
        auto_dtype("cpu")


def adapted_model(rows: int, length: int, tied: bool = False):
    """A random model with LoRA, biases and open gates, tokens and an adapter for layer 2, and its float32 logits."""
    model = random_model(tiny_args(n_kv_heads=2, w_lora=True, w_bias=True, tie_embeddings=tied, dim=128), seed=1)
    tokens = torch.randint(3, 97, (rows, length))
    adapter = {2: torch.randn(rows, 128)}
    with torch.no_grad():
        for layer in model.layers:
            layer.attention.gate.fill_(1.0)
        return model, tokens, adapter, model(tokens, adapters=adapter)


def test_bf16_logits_stay_within_the_documented_tolerance():
    """What bf16 promises (docs/performance.md, Precision): logits within 0.2 logit standard deviations of
    float32's (measured 0.11-0.15 on SmolLM2 and the demo model), so greedy answers agree until a near-tie; a
    batch decodes every prompt to its full length with adapters as in float32."""
    model, tokens, adapter, reference = adapted_model(3, 16)
    with torch.no_grad():
        low = model.to(torch.bfloat16)(tokens, adapters={2: adapter[2].bfloat16()})
    assert low.dtype == torch.float32  # logits come out in float32 whatever the weights' dtype
    error = (low - reference).abs().max() / reference.std()
    assert 0 < error < 0.2
    assert (low.argmax(-1) == reference.argmax(-1)).float().mean() >= 0.9
    out = generate(model, ByteTokenizer(eos_id=-5), ["a prompt", "another one", "x"], max_new_tokens=6,
                   adapters={2: adapter[2].bfloat16()}, batch_size=2)
    assert [len(c.tokens) for c in out] == [6, 6, 6]


@pytest.mark.parametrize("tied", [False, True])
def test_int8_quantises_the_projections_and_keeps_the_model_close(tied):
    model, tokens, adapter, reference = adapted_model(2, 12, tied)
    quantize_int8(model)
    plain = {name for name, p in model.named_parameters() if type(p.data) is torch.Tensor}
    assert not {f"layers.0.attention.{n}.weight" for n in ("wq", "wk", "wv", "wo")} & plain
    assert not {f"layers.2.feed_forward.{n}.weight" for n in ("w1", "w2", "w3")} & plain
    assert {"layers.0.attention.gate", "layers.0.attention.lora_wq_l1.weight", "layers.1.attention.wq.bias",
            "tok_embeddings.weight", "norm.weight"} <= plain
    # a tied head is the embedding table: it stays plain, and tied
    assert (type(model.output.weight.data) is torch.Tensor) == tied
    assert (model.output.weight is model.tok_embeddings.weight) == tied
    with torch.no_grad():
        quantised = model(tokens, adapters=adapter)
    error = (quantised - reference).abs().max() / reference.abs().max()
    assert 0 < error < 0.05
    out = generate(model, ByteTokenizer(eos_id=-5), ["a prompt", "another"], max_new_tokens=5, adapters=adapter,
                   batch_size=1)
    assert all(len(c.tokens) == 5 for c in out)
