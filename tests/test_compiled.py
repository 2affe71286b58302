"""The decoding step that compilers take whole: rotary embedding in real arithmetic, a key/value cache of one
shape for a run, and `--compile` (torch.compile of `Transformer.decode`), at toy size on the CPU."""

import shutil

import pytest
import torch

from llama import generate
from llama.compiled import CompiledStep, CompileError, compile_decoding
from llama.model import apply_rotary, rotary_embedding
from llama.testing.benchmarking import Ids
from llama.testing.tiny import random_model, tiny_args


def test_real_rotary_equals_the_complex_product():
    """Meta's rotary embedding is a product of complex numbers; the real form gives it to float32 rounding."""
    x = torch.randn(3, 11, 4, 16)
    positions = torch.arange(5, 16)[None].expand(3, -1) + torch.tensor([[0], [7], [900]])
    angles = positions.float()[..., None] * (1.0 / 10000.0 ** (torch.arange(0, 16, 2).float() / 16))
    expected = torch.view_as_real(torch.view_as_complex(x.unflatten(-1, (-1, 2))) *
                                  torch.polar(torch.ones_like(angles), angles)[:, :, None]).flatten(-2)
    assert (apply_rotary(x, rotary_embedding(positions, 16, 10000.0)) - expected).abs().max() <= 2e-6
    assert apply_rotary(x.bfloat16(), rotary_embedding(positions, 16, 10000.0)).dtype == torch.bfloat16


def test_compiled_decoding_gives_the_eager_greedy_tokens():
    """Continuous batching over rows of different lengths (prompts join as others finish), float32: the compiled
    step gives eager's tokens; a second run of other shapes (rows, cache length) compiles once more."""
    torch.manual_seed(0)
    model = random_model(tiny_args(n_kv_heads=2))
    prompts = [torch.randint(3, model.args.vocab_size, (n,)).tolist() for n in (5, 9, 3, 7, 12)]
    adapters = {model.args.n_layers - 1: torch.randn(len(prompts), model.args.dim)}
    options = {"max_new_tokens": 12, "stop_ids": [], "batch_size": 2, "adapters": adapters, "hidden_for": [5]}
    eager = generate(model, Ids, prompts, **options)
    eager_other = generate(model, Ids, prompts[:3], max_new_tokens=20, stop_ids=[])
    compile_decoding(model)
    assert isinstance(model.decode, CompiledStep)
    compiled = generate(model, Ids, prompts, **options)
    assert [c.tokens for c in compiled] == [c.tokens for c in eager]
    assert all(c.hidden.keys() == e.hidden.keys() for c, e in zip(compiled, eager, strict=True))
    assert all(torch.allclose(c.hidden[k], e.hidden[k], atol=1e-5) for c, e in zip(compiled, eager, strict=True)
               for k in e.hidden)
    assert model.decode.compile_seconds > 0
    step = model.decode
    compile_decoding(model)  # already compiled: kept
    assert model.decode is step
    assert [c.tokens for c in generate(model, Ids, prompts[:3], max_new_tokens=20, stop_ids=[])] == \
        [c.tokens for c in eager_other]


def test_compile_without_a_cpu_compiler_says_so(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CompileError, match="needs a C\\+\\+ compiler.*apt-get install g\\+\\+"):
        compile_decoding(random_model(tiny_args()))
