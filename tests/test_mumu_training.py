"""MuMu-LLaMA training pieces: each stage's trainable set as MUMU.md section 3 lists it, and the loss
(answer cross-entropy + decoder-alignment MSE at the [AUD] positions)."""

import pytest
import torch
import torch.nn.functional as F
from tiny_mumu import tiny_config

from llama.mu_llama import answer_loss
from llama.mumu_llama import STAGES, MuMuLLaMA, to_upstream
from llama.prompt import IGNORE_INDEX

from conftest import random_model, tiny_args


@pytest.fixture
def model():
    torch.manual_seed(0)
    llama = random_model(tiny_args(vocab_size=108, n_layers=3, w_bias=True, w_lora=True, lora_rank=4))
    return MuMuLLaMA(llama, tiny_config(projector_queries=4, projector_out=12))


def published(stage: int, name: str) -> bool:
    """MUMU.md section 3's trainable sets, by the original's parameter names."""
    backbone = name.startswith("llama.") and any(part in name for part in ("norm", "bias", "lora"))
    bridges = name.startswith(("mu_mert_", "iu_vit_", "iu_vivit_"))
    prefix, projector = name == "prefix_query.weight", name.startswith("output_projector.")
    embeddings = name == "llama.tok_embeddings.weight"
    return {1: backbone or bridges or prefix or embeddings or projector,
            2: backbone or projector or prefix or embeddings,
            3: backbone or prefix}[stage]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_each_stage_trains_what_the_original_trains(model, stage):
    names = [to_upstream(n) for n, _ in model.named_parameters()]
    assert sorted(to_upstream(n) for n in model.trained_names(stage)) == sorted(n for n in names if published(stage, n))
    gated = set(model.trained_names(stage, train_gates=True)) - set(model.trained_names(stage))
    assert gated == {n for n in dict(model.named_parameters()) if n.endswith(".gate")} and len(gated) == 3
    trained = model.set_stage(stage)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(trained)
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if n in trained)


def test_loss_reads_the_states_that_predict_the_audio_tokens(model):
    aud = model.audio_token_ids
    tokens = torch.tensor([[1, 5, 6, 7, 9, *aud, 11], [1, 5, 6, 7, 9, 10, 12, 13, 14, 15, 16, 17, 18, 19]])
    labels = tokens.clone()
    labels[:, :4] = IGNORE_INDEX  # the prompt
    features = {"music": torch.randn(2, 64)}
    targets = torch.randn(2, 4, 12)
    ce, mse = model.loss(tokens, labels, features, targets)
    logits, hidden = model.llama(tokens, adapters=model.adapters(features, 2), hidden=True)
    assert torch.allclose(ce, answer_loss(logits, labels))
    # row 0: [AUD0] at position 5, predicted from positions 4..11; row 1 asks for no music
    expected = F.mse_loss(model.project(hidden[:1, 4:12]), targets[:1])
    assert torch.allclose(mse, expected)
    assert model.loss(tokens, labels, features)[1] == 0  # no targets, no MSE
    # stage 2 aligns the decoder side: the MSE reaches the projector and the embedding, not the bridges
    model.set_stage(2)
    model.loss(tokens, labels, features, targets)[1].backward()
    assert model.output_projector.fc.weight.grad.abs().sum() > 0
    assert model.llama.tok_embeddings.weight.grad[aud].abs().sum() > 0
    assert model.music_bridge.proj.weight.grad is None


def test_decoder_targets_are_cached_once_in_eval_mode(tmp_path):
    """10 x MusicGen's T5 states at 128 tokens, as the original's target, but without its dropout: a
    rerun computes nothing new and reads back exactly what was written."""
    from llama.data.cache_features import FeatureCache, build_target_cache, caption_key
    from llama.decoders import load_decoder
    from llama.testing.decoders import write_tiny_musicgen

    write_tiny_musicgen(tmp_path / "musicgen")
    decoder = load_decoder("musicgen", tmp_path / "musicgen")
    captions = ["a calm piano piece", "fast drums and a bass line", "a calm piano piece"]
    build_target_cache(decoder, captions, tmp_path / "targets", batch_size=2)
    cache = FeatureCache(tmp_path / "targets")
    assert len(cache) == 2
    target = cache.get(caption_key("fast drums and a bass line"))
    assert target.shape == (128, decoder.condition_dim)
    decoder.model.text_encoder.train()  # dropout on: the original's target would differ every time
    assert not torch.allclose(10 * decoder.text_states(["fast drums and a bass line"])[0], target)
    decoder.model.text_encoder.eval()
    assert torch.allclose(10 * decoder.text_states(["fast drums and a bass line"])[0], target)
    before = sorted(p.name for p in (tmp_path / "targets").iterdir())
    build_target_cache(decoder, captions, tmp_path / "targets")
    assert sorted(p.name for p in (tmp_path / "targets").iterdir()) == before


def test_records_in_the_original_schema_are_checked_before_training(tmp_path, sentencepiece_model):
    """Bad data is counted and left out up front: a missing or undecodable input, a modality the model
    lacks, a music answer that max_words would cut; a music answer ends with the [AUD] tokens."""
    import json

    import numpy as np
    import soundfile

    from llama import Tokenizer
    from llama.data.mumu import MUSIC_TOKENS, check_records, collate_mumu, load_mumu_records
    from llama.mumu_llama import AUDIO_TOKENS
    from llama.testing.vision import write_image

    soundfile.write(tmp_path / "song.wav", np.zeros(2400, dtype=np.float32), 24000)
    write_image(tmp_path / "cat.png")
    (tmp_path / "broken.png").write_text("not an image")

    def record(input_file, modality, question, answer, music=True):
        return {"input_file": input_file, "output_file": "out.mp3" if music else "",
                "conversation": [{"from": "human", "value": question, "input_modality": modality, "caption": ""},
                                 {"from": "gpt", "value": answer, "caption": "calm piano" if music else "",
                                  "output_modality": "audio" if music else "text"}]}

    raw = [record("cat.png", "image", "Generate a music for the image", "Here is a calm piano piece."),
           record("song.wav", "audio", "Describe the music", "A sad song.", music=False),
           record("", "text", "Generate a music", "Here is a music. " * 40),  # cut by max_words=96
           record("lost.png", "image", "Make music", "Here it is."),
           record("broken.png", "image", "Make music", "Here it is."),
           record("clip.mp4", "video", "Make music for the video", "Here it is.")]
    (tmp_path / "data.json").write_text(json.dumps(raw))
    records = load_mumu_records(tmp_path / "data.json")
    assert records[0].answer.endswith(" " + MUSIC_TOKENS) and records[0].caption == "calm piano"
    assert records[1].caption is None and records[1].input_modality == "audio"

    tokenizer = Tokenizer(sentencepiece_model)
    tokenizer.add_tokens(list(AUDIO_TOKENS))
    kept, problems = check_records(records, tokenizer, max_words=96, modalities=("audio", "image"))
    assert kept == records[:2]
    assert problems == {"music answer cut at max_words=96 (its [AUD] tokens lost)": 1, "input file missing": 1,
                        "input file not decodable": 1, "video input, which this model lacks": 1}

    items = [{"tokens": torch.tensor([1, 5, 6]), "labels": torch.tensor([-100, 5, 6]), "image": "x"},
             {"tokens": torch.tensor([1, 7]), "labels": torch.tensor([-100, 7]), "caption": "calm"}]
    batch = collate_mumu(items)
    assert batch["tokens"].tolist() == [[1, 5, 6], [1, 7, 0]] and batch["labels"][1, 2] == IGNORE_INDEX
    assert batch["image"] == ["x", None] and batch["captions"] == [None, "calm"]
