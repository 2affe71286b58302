import pytest
import torch

from llama import Tokenizer, generate
from llama.generation import sample_top_p
from llama.testing.tiny import random_model, tiny_args


class ByteTokenizer(Tokenizer):
    """Real bytes <-> ids for the tiny random models (vocab 97 covers printable ASCII - 30)."""

    def __init__(self, eos_id=2):
        self.bos_id, self.eos_id, self.pad_id, self.n_words = 1, eos_id, -1, 97

    def _encode(self, text):
        return [min(ord(c) - 30, 96) for c in text]

    def _decode(self, ids):
        return "".join(chr(i + 30) for i in ids)


@pytest.fixture
def model():
    return random_model(tiny_args(n_kv_heads=2, max_seq_len=256), seed=3)


PROMPTS = ["a", "hello there, music", "four", "the longest prompt of this batch, by far"]


def test_batch_of_mixed_lengths_equals_each_alone(model):
    tok = ByteTokenizer(eos_id=-5)  # never stops: compare full 24-token continuations
    batch = generate(model, tok, PROMPTS, max_new_tokens=24)
    for prompt, got in zip(PROMPTS, batch, strict=True):
        alone = generate(model, tok, [prompt], max_new_tokens=24)[0]
        assert got.tokens == alone.tokens and len(got.tokens) == 24
        assert got.text == tok.decode(got.tokens)


def test_each_sequence_stops_at_its_own_eos(model):
    tok = ByteTokenizer(eos_id=-5)
    free = generate(model, tok, PROMPTS, max_new_tokens=12)
    stop = free[1].tokens[3]  # make row 1 stop at its 4th token
    tok.eos_id = stop
    stopped = generate(model, tok, PROMPTS, max_new_tokens=12)
    for before, after in zip(free, stopped, strict=True):
        expected = before.tokens[: before.tokens.index(stop)] if stop in before.tokens else before.tokens
        assert after.tokens == expected
    assert len(stopped[1].tokens) == 3


def test_sampling_is_seeded_and_top_p_zero_is_greedy(model):
    tok = ByteTokenizer(eos_id=-5)
    a = generate(model, tok, PROMPTS, max_new_tokens=16, temperature=1.0, top_p=0.9, seed=7)
    b = generate(model, tok, PROMPTS, max_new_tokens=16, temperature=1.0, top_p=0.9, seed=7)
    c = generate(model, tok, PROMPTS, max_new_tokens=16, temperature=1.0, top_p=0.9, seed=8)
    assert [x.tokens for x in a] == [x.tokens for x in b] != [x.tokens for x in c]
    greedy = generate(model, tok, PROMPTS, max_new_tokens=16)
    nucleus_of_one = generate(model, tok, PROMPTS, max_new_tokens=16, temperature=0.7, top_p=0.0, seed=1)
    assert [x.tokens for x in greedy] == [x.tokens for x in nucleus_of_one]


def test_nucleus_keeps_tokens_until_mass_exceeds_top_p():
    probs = torch.tensor([[0.1, 0.5, 0.3, 0.1]])
    # sorted 0.5, 0.3, 0.1, 0.1: mass before each = 0, 0.5, 0.8, 0.9 -> top_p 0.6 keeps {1, 2}
    seen = {int(sample_top_p(probs.clone(), 0.6, torch.Generator().manual_seed(s))) for s in range(200)}
    assert seen == {1, 2}


def test_streaming_callback_sees_every_token(model):
    tok = ByteTokenizer(eos_id=-5)
    streamed = [[] for _ in PROMPTS]

    def on_token(step, tokens):
        for row, t in enumerate(tokens):
            if t is not None:
                streamed[row].append(t)

    out = generate(model, tok, PROMPTS, max_new_tokens=10, on_token=on_token)
    assert streamed == [c.tokens for c in out]


def test_adapter_reaches_generation(model):
    tok = ByteTokenizer(eos_id=-5)
    with torch.no_grad():
        for layer in model.layers:
            layer.attention.gate.fill_(2.0)
    adapter = torch.randn(len(PROMPTS), 2, model.args.dim) * 5
    plain = generate(model, tok, PROMPTS, max_new_tokens=8)
    adapters = {len(model.layers) - 2: adapter[:, 0], len(model.layers) - 1: adapter[:, 1]}  # the last 2 layers
    adapted = generate(model, tok, PROMPTS, max_new_tokens=8, adapters=adapters)
    assert [c.tokens for c in plain] != [c.tokens for c in adapted]


MANY = [p + tail for p in PROMPTS for tail in ("", " again", " and a third time over")]


@pytest.mark.parametrize("batch_size", [1, 3, 5])
def test_continuous_batching_gives_each_prompt_its_answer_alone(model, batch_size):
    tok = ByteTokenizer(eos_id=-5)
    free = generate(model, tok, MANY, max_new_tokens=14)
    tok.eos_id = free[0].tokens[4]  # a common token: answers now end at different steps, some run out
    lengths = {len(c.tokens) for c in generate(model, tok, MANY, max_new_tokens=14)}
    assert len(lengths) >= 3
    with torch.no_grad():
        for layer in model.layers:
            layer.attention.gate.fill_(1.5)
    adapter = torch.randn(len(MANY), model.args.dim) * 3
    adapters = {len(model.layers) - 1: adapter}
    finished = []
    queued = generate(model, tok, MANY, max_new_tokens=14, adapters=adapters, batch_size=batch_size,
                      hidden_for=[tok.encode("e", bos=False)[0]], on_done=lambda i, c: finished.append((i, c)))
    for i, prompt in enumerate(MANY):
        alone = generate(model, tok, [prompt], max_new_tokens=14, adapters={k: v[i:i + 1] for k, v in adapters.items()},
                         hidden_for=[tok.encode("e", bos=False)[0]])[0]
        assert queued[i].tokens == alone.tokens
        assert queued[i].hidden.keys() == alone.hidden.keys()
        for step, state in alone.hidden.items():
            assert torch.allclose(queued[i].hidden[step], state, atol=1e-5)
    assert sorted(i for i, _ in finished) == list(range(len(MANY)))
    assert all(queued[i] is c for i, c in finished)
    if batch_size > 1:  # rows refill as they free: prompts finish out of order
        assert [i for i, _ in finished] != sorted(i for i, _ in finished)


def test_continuous_batching_streams_each_prompt(model):
    tok = ByteTokenizer(eos_id=-5)
    streamed = [[] for _ in MANY]

    def on_token(step, tokens):
        assert len(tokens) == len(MANY) and sum(t is not None for t in tokens) <= 4
        for row, t in enumerate(tokens):
            if t is not None:
                streamed[row].append(t)

    out = generate(model, tok, MANY, max_new_tokens=6, batch_size=4, on_token=on_token)
    assert streamed == [c.tokens for c in out]
