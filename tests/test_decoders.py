"""The music decoders on tiny random MusicGen and AudioLDM2 folders: the same audio as transformers'
and diffusers' own calls, lengths, seeds, limits and folder errors."""

import json

import numpy as np
import pytest
import torch

from llama.decoders import AudioLDM2Decoder, MusicDecoderError, MusicGenDecoder, load_decoder
from llama.testing.decoders import WORDS, write_tiny_audioldm2, write_tiny_musicgen

TEXTS = ["calm piano melody", "upbeat rock song with heavy drums and bass"]
LONG = " ".join(WORDS * 3)  # more than 128 T5 tokens: cut to 128, so no padding and every position attended


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """On tiny models, threads contending for shared cores cost far more than the work (30x here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def musicgen_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("musicgen")
    write_tiny_musicgen(folder)
    return folder


@pytest.fixture(scope="module")
def musicgen(musicgen_dir):
    return load_decoder("musicgen", musicgen_dir)


@pytest.fixture(scope="module")
def reference(musicgen_dir):
    """transformers' own model and tokenizer from the same folder."""
    from transformers import AutoTokenizer, MusicgenForConditionalGeneration

    return MusicgenForConditionalGeneration.from_pretrained(musicgen_dir), AutoTokenizer.from_pretrained(musicgen_dir)


@pytest.fixture(scope="module")
def audioldm2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audioldm2")
    write_tiny_audioldm2(folder)
    return load_decoder("audioldm2", folder)


def samples(decoder: MusicGenDecoder, seconds: float) -> int:
    """MusicGen's output length: int(51.2 s) tokens, less the delay pattern's codebooks - 1, plus the start."""
    config = decoder.model.config
    frames = int(decoder.frame_rate * seconds) + 1 - config.decoder.num_codebooks
    return frames * config.audio_encoder.hop_length


def test_musicgen_folder_and_sizes(musicgen_dir, musicgen):
    assert isinstance(musicgen, MusicGenDecoder)
    assert {"config.json", "model.safetensors", "generation_config.json", "preprocessor_config.json",
            "spiece.model", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in musicgen_dir.iterdir()}
    generation = json.loads((musicgen_dir / "generation_config.json").read_text())
    assert generation["do_sample"] and generation["guidance_scale"] == 3.0 and generation["max_length"] == 1500
    assert generation["decoder_start_token_id"] == generation["pad_token_id"] == 64  # the codebook size
    tokenizer = musicgen.tokenizer
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert musicgen.sample_rate == 32000 and musicgen.frame_rate == 51.2
    assert musicgen.max_seconds == 2048 / 51.2 == 40.0
    assert (musicgen.condition_tokens, musicgen.condition_size) == (128, 32)


def test_musicgen_text_greedy_is_transformers_generate(musicgen, reference):
    model, tokenizer = reference
    inputs = tokenizer(TEXTS, padding="max_length", max_length=128, truncation=True, return_tensors="pt")
    expected = model.generate(**inputs, guidance_scale=3.5, do_sample=False, max_new_tokens=int(256 / 5 * 0.3))
    audio = musicgen.from_text(TEXTS, 0.3, temperature=0)
    assert [a.dtype for a in audio] == [np.float32] * 2
    np.testing.assert_array_equal(np.stack(audio), expected[:, 0].numpy())


def test_musicgen_embeddings_greedy_is_transformers_generate(musicgen, reference):
    embeds = torch.randn(2, 128, 32, generator=torch.Generator().manual_seed(0))
    expected = reference[0].generate(encoder_outputs=(embeds,), guidance_scale=1, do_sample=False,
                                     max_new_tokens=int(256 / 5 * 0.3))
    audio = musicgen.from_embeddings(embeds, 0.3, temperature=0)
    np.testing.assert_array_equal(np.stack(audio), expected[:, 0].numpy())


def test_musicgen_text_states_and_guided_embeddings_match_text(musicgen, reference):
    model, tokenizer = reference
    inputs = tokenizer(TEXTS + [LONG], padding="max_length", max_length=128, truncation=True, return_tensors="pt")
    states = musicgen.text_states(TEXTS + [LONG])
    assert states.shape == (3, 128, 32)
    with torch.no_grad():
        torch.testing.assert_close(states, model.text_encoder(**inputs).last_hidden_state, rtol=0, atol=0)
    # A caption filling all 128 tokens has no padding to mask, so its T5 states given as embeddings,
    # with MusicGen's zero unconditional half, make the same audio as the text.
    assert inputs.attention_mask[2].all()
    guided = musicgen.from_embeddings(states[2:], 0.2, temperature=0, guidance_scale=3.5)
    np.testing.assert_array_equal(guided[0], musicgen.from_text([LONG], 0.2, temperature=0)[0])


def test_musicgen_seeded_sampling(musicgen):
    state = torch.get_rng_state()
    first = musicgen.from_text(TEXTS[:1], 0.2, seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left alone
    np.testing.assert_array_equal(first[0], musicgen.from_text(TEXTS[:1], 0.2, seed=1)[0])
    assert not np.array_equal(first[0], musicgen.from_text(TEXTS[:1], 0.2, seed=2)[0])
    warm = musicgen.from_embeddings(torch.zeros(1, 4, 32), 0.2, temperature=0.7, seed=3)
    np.testing.assert_array_equal(warm[0], musicgen.from_embeddings(torch.zeros(1, 4, 32), 0.2, temperature=0.7,
                                                                    seed=3)[0])


@pytest.mark.parametrize("seconds", [0.12, 0.45, 2.0])
def test_musicgen_length(musicgen, seconds):
    audio = musicgen.from_text(TEXTS[:1], seconds, temperature=0)[0]
    assert audio.shape == (samples(musicgen, seconds),)
    # 51.2 steps/s for 50 frames/s, less the 3 delay steps: within 4 frames and 2.4% of the request
    assert abs(audio.size / 640 - 50 * seconds) <= 4 + 1.2 * seconds


def test_musicgen_limits(musicgen):
    for seconds in (40.1, 0, -1, 0.1, float("nan"), float("inf")):
        with pytest.raises(MusicDecoderError, match="between 0.117 and 40"):
            musicgen.from_text(TEXTS, seconds)
    with pytest.raises(MusicDecoderError, match="temperature"):
        musicgen.from_text(TEXTS, 1, temperature=-1)
    with pytest.raises(MusicDecoderError, match=r"\[batch, tokens, 32\]"):
        musicgen.from_embeddings(torch.zeros(1, 128, 768), 1)


def test_wrong_folders(tmp_path, musicgen_dir):
    with pytest.raises(MusicDecoderError, match="missing is no folder.*MusicGen"):
        MusicGenDecoder.load(tmp_path / "missing")
    with pytest.raises(MusicDecoderError, match="holds no config.json.*MusicGen"):
        MusicGenDecoder.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(MusicDecoderError, match="model_type 't5'.*MusicGen"):
        MusicGenDecoder.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(MusicDecoderError, match="not valid JSON"):
        MusicGenDecoder.load(tmp_path)
    with pytest.raises(MusicDecoderError, match="no model_index.json.*AudioLDM2"):
        load_decoder("audioldm2", musicgen_dir)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "AudioLDMPipeline"}))
    with pytest.raises(MusicDecoderError, match="'AudioLDMPipeline'.*AudioLDM2Pipeline"):
        AudioLDM2Decoder.load(tmp_path)
    with pytest.raises(MusicDecoderError, match="musicgen"):
        load_decoder("jukebox", musicgen_dir)


def test_audioldm2_sizes(audioldm2):
    assert isinstance(audioldm2, AudioLDM2Decoder)
    assert audioldm2.sample_rate == 16000
    assert (audioldm2.prompt_tokens, audioldm2.prompt_dim, audioldm2.generated_tokens, audioldm2.generated_dim) == (
        128, 32, 8, 16)
    assert audioldm2.condition_size == 128 * 32 + 8 * 16
    assert audioldm2.min_seconds == 160 * 2 / 16000


def test_audioldm2_from_text(audioldm2):
    audio = audioldm2.from_text(TEXTS, 0.5, seed=0, steps=2, waveforms=2)
    assert [a.shape for a in audio] == [(8000,)] * 2 and audio[0].dtype == np.float32
    assert all(np.isfinite(a).all() for a in audio)
    # Seeded, and each text runs alone: the same waveform whatever else is in the call.
    np.testing.assert_array_equal(audio[1], audioldm2.from_text(TEXTS[1:], 0.5, seed=0, steps=2, waveforms=2)[0])
    assert not np.array_equal(audio[0], audioldm2.from_text(TEXTS[:1], 0.5, seed=1, steps=2, waveforms=2)[0])


def test_audioldm2_from_embeddings(audioldm2):
    # The pipeline's own conditioning of a caption that fills T5's 128 tokens, flattened as the
    # projector emits it, makes the same audio as the caption (against the same empty negative prompt).
    prompt, _, generated = audioldm2.pipe.encode_prompt([LONG], "cpu", 1, False)
    assert prompt.shape == (1, 128, 32) and generated.shape == (1, 8, 16)
    flat = torch.cat([prompt.flatten(1), generated.flatten(1)], dim=1)
    audio = audioldm2.from_embeddings(flat[:, None], 0.37, seed=0, steps=2)
    assert audio[0].shape == (int(0.37 * 16000),)
    text = audioldm2.from_text([LONG], 0.37, seed=0, steps=2, waveforms=1, negative_prompt="")
    np.testing.assert_allclose(audio[0], text[0], rtol=0, atol=1e-6)
    # Rows are independent of their batch: each starts from the seed's noise.
    both = audioldm2.from_embeddings(torch.cat([torch.randn_like(flat), flat]), 0.37, seed=0, steps=2)
    np.testing.assert_allclose(both[1], audio[0], rtol=0, atol=1e-6)


def test_audioldm2_limits(audioldm2):
    for seconds in (0, 0.01, float("nan")):
        with pytest.raises(MusicDecoderError, match="at least 0.02"):
            audioldm2.from_embeddings(torch.zeros(1, 4224), seconds)
    with pytest.raises(MusicDecoderError, match=r"\[batch, 4224\].*128 x 32 T5 \+ 8 x 16 GPT-2"):
        audioldm2.from_embeddings(torch.zeros(1, 137216), 1)
