import json

import numpy as np
import pytest
import soundfile
import torch

from llama import MULLaMA, MULLaMAConfig, Tokenizer, format_prompt, load_llama, load_mert
from llama.data.batch import collate, model_inputs
from llama.data.caches import FeatureCache, build_cache
from llama.data.dataset import MusicQADataset, Record, SubEpochSampler, load_records, mix
from llama.prompt import IGNORE_INDEX
from llama.prompt import encode_example as tokenize
from llama.testing.tiny import write_tiny_llama, write_tiny_mert


def record(name, question, answer):
    convo = [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    return {"audio_name": name, "conversation": convo} if name else {"conversation": convo}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sentencepiece_model):
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    (root / "audios").mkdir()
    for i in range(6):
        soundfile.write(root / "audios" / f"{i:06d}.wav", rng.uniform(-0.3, 0.3, 24000 + 4000 * i), 24000)
    records = [record(f"{i:06d}.wav", "Describe the audio", f"A calm piece number {i} with soft piano.")
               for i in range(6)] + [record(None, "Name a color.", "Blue.")]
    (root / "qa.json").write_text(json.dumps(records))
    write_tiny_llama(root / "LLaMA")
    write_tiny_mert(root / "MERT")
    return root


def test_prompt_answer_boundary_is_exact_and_eos_kept(sentencepiece_model):
    tok = Tokenizer(sentencepiece_model)
    tokens, labels, cut = tokenize(tok, "What is the tempo?", "It is fast.", "upstream", max_words=200)
    prompt = tok.encode(format_prompt("What is the tempo?"), bos=True)
    assert tokens[: len(prompt)].tolist() == prompt and not cut
    assert (labels[: len(prompt)] == IGNORE_INDEX).all()
    assert labels[len(prompt):].tolist() == tok.encode("It is fast.", bos=False) + [tok.eos_id]
    assert tok.decode(tokens[len(prompt):-1].tolist()) == "It is fast."
    for tokenization in ("separate", "joint"):  # answer_eos: false, as M2UGen trains: the answer ends unmarked
        no_eos = tokenize(tok, "What is the tempo?", "It is fast.", "upstream", 200, tokenization, eos=False)
        assert no_eos.tokens[-1] != tok.eos_id and not no_eos.cut
        assert no_eos.tokens.tolist() == tokenize(tok, "What is the tempo?", "It is fast.", "upstream", 200,
                                                  tokenization).tokens[:-1].tolist()


def test_truncation_drops_eos_and_long_prompts_are_skipped(sentencepiece_model):
    tok = Tokenizer(sentencepiece_model)
    prompt_len = len(tok.encode(format_prompt("Q?"), bos=True))
    tokens, labels, cut = tokenize(tok, "Q?", "one two three four five six seven", "upstream",
                                   max_words=prompt_len + 3)
    assert len(tokens) == prompt_len + 3 and tok.eos_id not in labels.tolist() and cut
    # without an EOS to miss, a cut answer is still known as cut
    assert tokenize(tok, "Q?", "one two three four five six seven", "upstream", prompt_len + 3, eos=False).cut
    assert not tokenize(tok, "Q?", "one two", "upstream", prompt_len + 20, eos=False).cut
    assert tokenize(tok, "Q?", "A.", "upstream", max_words=prompt_len) is None


def test_records_and_bad_files(tmp_path, corpus):
    records, _ = load_records(corpus / "qa.json", corpus / "audios")
    assert len(records) == 7 and records[-1].audio is None and records[0].audio.name == "000000.wav"
    lines = "\n".join(json.dumps(r) for r in json.loads((corpus / "qa.json").read_text()))
    (tmp_path / "qa.jsonl").write_text(lines)
    assert len(load_records(tmp_path / "qa.jsonl")[0]) == 7
    (tmp_path / "bad.json").write_text('[{"audio_name": "x.wav"')
    with pytest.raises(ValueError, match="not valid JSON"):
        load_records(tmp_path / "bad.json")
    (tmp_path / "schema.json").write_text('[{"audio_name": "x.wav", "question": "Q"}]')
    with pytest.raises(ValueError, match="record 0: expected"):
        load_records(tmp_path / "schema.json")


def test_batches_pad_dynamically_and_text_only_hears_silence(corpus):
    tok = Tokenizer(corpus / "LLaMA" / "tokenizer.model")
    data = MusicQADataset(load_records(corpus / "qa.json", corpus / "audios")[0], tok, max_words=200)
    batch = collate([data[0], data[6], data[3]], pad_id=0)
    longest = max(len(data[i]["tokens"]) for i in (0, 6, 3))
    assert batch["tokens"].shape == (3, longest)
    assert (batch["labels"][1, len(data[6]["tokens"]):] == IGNORE_INDEX).all()
    assert [len(a) for a in batch["music"]] == [24000, 24000, 36000]  # text-only: 1 s of silence
    assert not batch["music"][1].any()
    zeros = MusicQADataset(load_records(corpus / "qa.json", corpus / "audios")[0], tok, 200, text_only_audio="zeros",
                           feature_shape=(3, 32))
    text_only = collate([zeros[6]])["music"][0]
    assert text_only.shape == (3, 32) and not text_only.any()


def test_sub_epoch_sampler_partitions_and_is_deterministic():
    one = [SubEpochSampler(100, split_epoch=5, seed=3) for _ in range(2)]
    seen = []
    for epoch in range(5):
        for s in one:
            s.set_epoch(epoch)
        assert one[0].indices() == one[1].indices()
        seen += one[0].indices()
    assert sorted(seen) == list(range(100))  # 5 sub-epochs = one pass
    ranks = [SubEpochSampler(100, 5, rank=r, world_size=2, seed=3) for r in range(2)]
    assert not set(ranks[0].indices()) & set(ranks[1].indices())
    assert sorted(ranks[0].indices() + ranks[1].indices()) == sorted(SubEpochSampler(100, 5, seed=3).indices())


def test_mix_by_ratio():
    a, b = list(range(10)), list(range(100, 130))
    mixed = mix([a, b], [0.5, 0.5], seed=0)
    values = [mixed[i] for i in range(len(mixed))]
    assert len(values) == 40 and sum(v < 100 for v in values) == 20
    assert len(mix([a, b], None)) == 40


def test_feature_cache_resumes_and_matches_on_the_fly(tmp_path, corpus):
    mert = load_mert(corpus / "MERT")
    files = sorted((corpus / "audios").glob("*.wav"))
    build_cache(mert, files[:3], tmp_path / "cache", batch_size=2, shard_size=2)
    calls = []
    original = mert.layer_means
    mert.layer_means = lambda clips, **kw: calls.append(len(clips)) or original(clips, **kw)
    cache = build_cache(mert, files, tmp_path / "cache", batch_size=2, shard_size=2)
    assert sum(calls) == 3 and len(cache) == 6  # only the 3 new clips were encoded
    mert.layer_means = original

    tok = Tokenizer(corpus / "LLaMA" / "tokenizer.model")
    records = load_records(corpus / "qa.json", corpus / "audios")[0][:4]
    cached = MusicQADataset(records, tok, 200, feature_cache=FeatureCache(tmp_path / "cache"))
    live = MusicQADataset(records, tok, 200)
    llama = load_llama(corpus / "LLaMA" / "7B")
    torch.manual_seed(0)
    model = MULLaMA(llama, mert, MULLaMAConfig(query_layer=2, mert_layers=3, mert_dim=32, bridge_width=64))
    with torch.no_grad():
        for layer in llama.layers:
            layer.attention.gate.fill_(0.5)
    a, b = collate([cached[i] for i in range(4)]), collate([live[i] for i in range(4)])
    with torch.no_grad():
        loss_cached = model(a["tokens"], a["labels"], model_inputs(model, a, "cpu"))[0]
        loss_live = model(b["tokens"], b["labels"], model_inputs(model, b, "cpu"))[0]
    assert abs(loss_cached.item() - loss_live.item()) < 1e-6


def test_joint_tokenization_gives_the_originals_labels_and_loss(sentencepiece_model):
    """configs/pretrain.yaml and finetune.yaml tokenise as the original: prompt + answer as one string,
    the first len(prompt) positions masked. The original's labels and loss are computed here from the
    SentencePiece model directly (pad to max_words with 0, ignore_index 0), independently of the project."""
    import sentencepiece

    from llama.testing.releases import tiny_mu_llama

    question, answer = "Describe the audio", "The music is a calm piano piece with a slow tempo."
    sp = sentencepiece.SentencePieceProcessor(model_file=str(sentencepiece_model))
    prompt_text = format_prompt(question)
    prompt = [sp.bos_id(), *sp.encode(prompt_text)]
    full = [sp.bos_id(), *sp.encode(prompt_text + answer), sp.eos_id()]
    max_words = 96
    original_tokens = torch.tensor(full + [0] * (max_words - len(full)))
    original_labels = original_tokens.clone()
    original_labels[: len(prompt)] = 0

    data = MusicQADataset([Record(question, answer, None)], Tokenizer(sentencepiece_model), max_words, "upstream",
                          tokenization="joint")
    tokens, labels = data.items[0][1:]
    assert tokens.tolist() == full
    assert torch.equal(labels.clamp(min=0), original_labels[: len(full)])
    first = labels[labels != IGNORE_INDEX][0].item()
    assert sp.id_to_piece(first) == "The"  # after "### Response:" the first word has no leading space
    separate = tokenize(Tokenizer(sentencepiece_model), question, answer, "upstream", max_words)[1]
    assert sp.id_to_piece(separate[separate != IGNORE_INDEX][0].item()) == "\u2581The"

    model = tiny_mu_llama()
    means = torch.randn(1, 3, 32)
    with torch.no_grad():
        ours = model(tokens[None], labels[None], {"music": (torch.arange(1), means)})[0]
        logits = model.logits(original_tokens[None], {"music": model.features("music", means)})
        original = torch.nn.functional.cross_entropy(logits[0, :-1], original_labels[1:], ignore_index=0)
    assert torch.allclose(ours, original, atol=1e-6)



def test_one_renderer_plays_each_clip_as_a_fresh_soundfont_would():
    """make_dataset and the note-event decoder render many clips with one synthetic.Renderer (the soundfont is
    parsed once): every clip, two instruments and long releases included, has the bytes of a clip rendered
    by a soundfont loaded for it alone (synthetic.render), whatever came before it."""
    import random

    from llama.data import synthetic

    renderer, rng = synthetic.Renderer(), random.Random(0)
    for i in range(24):
        facts = synthetic.random_facts(rng) | ({"count": 2} if i % 3 == 0 else {})
        seconds = (0.5, 3.0, 6.0)[i % 3]
        midi = synthetic.compose(facts, seconds, random.Random(i))
        assert renderer(midi, seconds).tobytes() == synthetic.render(midi, seconds).tobytes(), (i, facts)
