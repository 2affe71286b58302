"""MuMu-LLaMA (M2UGen): the model, the released checkpoint layout, generation with [AUD] tokens,
the music decoder behind it, and inference.py's M2UGen flags, on a tiny release in the real formats."""

import sys

import numpy as np
import pytest
import soundfile
import torch
from torch import nn

import llama
from llama.mumu_llama import AUDIO_TOKENS, MuMuLLaMA
from llama.output_projector import OutputProjector
from llama.pipeline import Request, gather_audio_states
from llama.testing.releases import MUSIC_ANSWER, tiny_config, write_tiny_mumu_release
from llama.testing.tiny import random_model, tiny_args
from llama.testing.upstream import write_m2ugen_checkpoint
from llama.testing.vision import write_image, write_video

from conftest import ROOT, run_here

sys.path.insert(0, str(ROOT / "MU-LLaMA"))

import inference  # noqa: E402


@pytest.fixture(scope="module")
def release(tmp_path_factory, sentencepiece_model):
    return write_tiny_mumu_release(tmp_path_factory.mktemp("m2ugen"), sentencepiece_model)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    write_image(folder / "red.png", seed=1)
    write_video(folder / "clip.mkv", frames=40, seed=2)
    rng = np.random.default_rng(3)
    soundfile.write(folder / "tune.wav", (0.3 * rng.standard_normal(24000 * 2)).astype(np.float32), 24000)
    return folder


@pytest.fixture(scope="module")
def pipeline(release):
    return llama.load_mumu(release["checkpoint"], release["llama_dir"], release["mert_path"], release["vit_path"],
                           release["vivit_path"], release["music_decoder_path"])


def test_projector_is_the_released_transformer():
    torch.manual_seed(0)
    projector = OutputProjector(64, 32, queries=8).eval()
    reference = nn.Transformer(d_model=512, nhead=4, num_encoder_layers=4, num_decoder_layers=4,
                               dim_feedforward=2048, dropout=0.0, batch_first=True)
    reference.load_state_dict(projector.tfm.state_dict())
    reference.train()  # the plain path, not the fused inference kernels
    hidden, embeddings = torch.randn(3, 8, 64), torch.randn(1, 8, 64)
    x = projector.fc(hidden + embeddings)
    expected = projector.model(reference(x, projector.query_embs.expand(3, -1, -1)))
    assert projector(hidden, embeddings).shape == (3, 8, 32)
    torch.testing.assert_close(projector(hidden, embeddings), expected, rtol=1e-5, atol=1e-5)


def test_layer_groups_and_missing_inputs():
    """With 8 layers and 2 per modality: layers 0-1 plain, 2-3 music (prefix rows 0-1), 4-5 image (rows
    2-3), 6-7 video (rows 4-5); an absent input leaves the bare prefix row, as a zero feature does."""
    model = MuMuLLaMA(random_model(tiny_args(vocab_size=108, n_layers=8)), tiny_config(query_layer=2))
    music, video = torch.randn(2, 64), torch.randn(2, 64)
    rows = model.prefix_query.weight
    adapters = model.adapters({"music": music, "video": video}, batch=2)
    assert sorted(adapters) == [2, 3, 4, 5, 6, 7]
    torch.testing.assert_close(adapters[3], music + rows[1])
    torch.testing.assert_close(adapters[4], rows[2].expand(2, -1))
    torch.testing.assert_close(adapters[7], video + rows[5])
    zero = model.adapters({"music": music, "image": torch.zeros(2, 64), "video": video}, batch=2)
    assert all(torch.equal(zero[k], adapters[k]) for k in adapters)


def test_audio_tokens_are_gathered_in_order_as_the_original():
    ids = list(range(100, 108))
    hidden = {i: torch.full((2,), float(i)) for i in range(30)}
    assert gather_audio_states([5, *ids, 6], hidden, ids)[:, 0].tolist() == list(range(1, 9))
    # out-of-order tokens are skipped; a missing one means no music
    gathered = gather_audio_states([100, 5, 101, 103, 102, *ids[3:]], hidden, ids)
    assert gathered[:, 0].tolist() == [0, 2, 4, 5, 6, 7, 8, 9]
    assert gather_audio_states(ids[:7], hidden, ids) is None
    # a complete set followed by a new [AUD0] starts over, and the unfinished set gives no music
    assert gather_audio_states([*ids, 100, 101], hidden, ids) is None


def test_tokenizer_adds_the_audio_tokens(release):
    tokenizer = llama.Tokenizer(release["llama_dir"] / "tokenizer.model")
    assert tokenizer.add_tokens(list(AUDIO_TOKENS)) == list(range(32000, 32008))
    ids = tokenizer.encode("calm. [AUD0][AUD1]", bos=False)
    assert ids[-2:] == [32000, 32001]
    # as transformers' slow tokenizers decode added tokens: the text before them (" calm. " keeps the
    # "▁" piece the space before [AUD0] became) and each added token, joined by single spaces
    assert tokenizer.decode(ids) == tokenizer.decode(ids[:-2]) + " [AUD0] [AUD1]" == "calm.  [AUD0] [AUD1]"


def test_released_layout_loads(release, pipeline):
    """module.-prefixed fp16 LLaMA with 32008 rows, fp32 bridges and projector, frozen encoder and decoder
    copies, optimizer state and a Namespace: every trained tensor arrives; llama.load recognises it."""
    expected = release["model"].state_dict()
    got = pipeline.model.state_dict()
    for key in ("llama.tok_embeddings.weight", "llama.output.weight", "llama.layers.3.attention.gate",
                "image_bridge.blocks.2.f3.weight", "prefix_query.weight", "output_projector.query_embs"):
        torch.testing.assert_close(got[key], expected[key].to(got[key].dtype), rtol=1e-3, atol=1e-3)
    assert pipeline.model.config.music_decoder == "musicgen"
    assert (pipeline.model.config.vit_tokens, pipeline.model.config.vivit_tokens) == (5, 65)
    assert isinstance(llama.load(release["checkpoint"], release["llama_dir"], release["mert_path"]),
                      llama.MuMuPipeline)


def requests(pipeline, media):
    audio = llama.load_audio(media / "tune.wav", pipeline.sample_rate)
    image, video = llama.load_image(media / "red.png"), llama.load_video(media / "clip.mkv")
    return [Request("What is in the picture?", image=image), Request("Generate a music"),
            Request("Describe the video", video=video, audio=audio), Request("Describe the music", audio=audio)]


def test_batched_answers_equal_one_by_one_and_the_original_recompute(pipeline, media):
    batch = requests(pipeline, media)
    together = pipeline.respond(batch, max_new_tokens=24)
    alone = [pipeline.respond([r], max_new_tokens=24)[0] for r in batch]
    assert [r.tokens for r in together] == [r.tokens for r in alone]
    # The original recomputes the whole prefix at every step (no cache), greedy, stops on "\n###".
    model, tokenizer = pipeline.model, pipeline.tokenizer
    request = batch[2]
    adapters = model.adapters(pipeline.encode_inputs([request]), 1)
    ids = tokenizer.encode(llama.format_prompt(request.prompt, "alpaca"))
    start = len(ids)
    for _ in range(24):
        ids.append(int(model.llama(torch.tensor([ids]), adapters=adapters)[0, -1].argmax()))
        if tokenizer.decode(ids[-3:]) == "\n###":
            break
    upstream = llama.MuMuPipeline(model, tokenizer, stop_rules="upstream")
    assert upstream.respond([request], max_new_tokens=24)[0].tokens == ids[start:]
    # the inputs reach the logits: the gates are open
    tokens = torch.tensor([ids])
    assert not torch.allclose(model.logits(tokens, pipeline.encode_inputs([request])), model.logits(tokens, {}))


def test_music_request_yields_projected_audio_states(pipeline):
    reply = pipeline.respond([Request("Generate a music")], max_new_tokens=40)[0]
    assert reply.text.endswith("[AUD0] [AUD1] [AUD2] [AUD3] [AUD4] [AUD5] [AUD6] [AUD7]")
    assert MUSIC_ANSWER.split(".")[0] in reply.text
    # the states at the positions that predict [AUD0..7], before the final norm, from one full forward
    model, tokenizer = pipeline.model, pipeline.tokenizer
    ids = tokenizer.encode(llama.format_prompt("Generate a music", "alpaca")) + reply.tokens
    _, hidden = model.llama(torch.tensor([ids]), adapters=model.adapters({}, 1), hidden=True)
    first = ids.index(model.audio_token_ids[0])
    expected = model.project(hidden[:, first - 1:first + 7])[0]
    torch.testing.assert_close(reply.conditioning, expected, rtol=1e-4, atol=1e-4)
    wave = pipeline.music(reply, 0.5, conditioning="projector", temperature=0)
    # MusicGen's delay pattern costs 3 of the int(51.2 x seconds) frames, as in the original
    assert wave.ndim == 1 and abs(len(wave) / pipeline.decoder.sample_rate - 0.5) < 0.1


def test_an_incomplete_audio_set_is_said_and_can_be_completed(pipeline):
    """An answer cut inside its [AUD] set makes no music and says what came back; complete_audio gives the
    states a whole set would have had (a full forward over the answer up to [AUD0] and the eight tokens)."""
    whole = pipeline.respond([Request("Generate a music")], max_new_tokens=40)[0]
    assert whole.conditioning is not None and whole.music_note is None and whole.asked_for_music
    cut_at = whole.tokens.index(pipeline.model.audio_token_ids[0]) + 5  # [AUD0] .. [AUD4] come back
    cut = pipeline.respond([Request("Generate a music")], max_new_tokens=cut_at)[0]
    assert cut.conditioning is None and cut.audio_tokens == [f"[AUD{i}]" for i in range(5)]
    assert cut.music_note.startswith("no music: the answer asked for music") and "[AUD4])" in cut.music_note
    with pytest.raises(ValueError, match="incomplete or out of order"):
        pipeline.music(cut, 0.5)
    completed = pipeline.respond([Request("Generate a music")], max_new_tokens=cut_at, complete_audio=True)[0]
    assert completed.completed and "completed" in completed.music_note
    torch.testing.assert_close(completed.conditioning, whole.conditioning, rtol=1e-4, atol=1e-4)
    plain = llama.Reply("A calm piece.", whole.tokens[:cut_at - 5])  # an answer without any [AUD] token
    assert not plain.asked_for_music and plain.music_note.startswith("no music: the answer does not ask for any")


def test_a_prompt_beyond_the_context_is_refused_in_tokens_and_characters(pipeline):
    long = "Generate a music " * (pipeline.max_seq_len // 2)
    with pytest.raises(ValueError, match=r"too long: \d+ tokens \(\d+ characters\).*context holds \d+ tokens"):
        pipeline.respond([Request(long)])
    room = pipeline.max_seq_len - len(pipeline.tokenizer.encode(llama.format_prompt("Generate a music",
                                                                                     pipeline.template)))
    reply = pipeline.respond([Request("Generate a music")], max_new_tokens=10 * pipeline.max_seq_len)[0]
    assert len(reply.tokens) <= room  # the length asked for is cut to the room the prompt leaves


def test_zero_gates_warn_and_inputs_change_nothing(release, tmp_path, media, capfd):
    """A checkpoint as the original's training leaves it: every gate 0."""
    state = {k: torch.zeros_like(v) if k.endswith(".gate") else v for k, v in release["model"].state_dict().items()}
    write_m2ugen_checkpoint(state, {}, tmp_path / "closed.pth")
    pipeline = llama.load_mumu(tmp_path / "closed.pth", release["llama_dir"], release["mert_path"],
                               release["vit_path"], release["vivit_path"])
    assert "every attention gate" in capfd.readouterr().err
    batch = requests(pipeline, media)
    tokens = torch.tensor([pipeline.tokenizer.encode("Describe it")] * len(batch))
    with_inputs = pipeline.model.logits(tokens, pipeline.encode_inputs(batch))
    without = pipeline.model.logits(tokens, {})
    assert torch.equal(with_inputs, without)


def test_converted_checkpoint_gives_the_same_logits(release, pipeline, media, tmp_path):
    out = tmp_path / "mumu.safetensors"
    import convert_checkpoint  # its command line, in this process (tests/test_mu_llama.py runs it as one)

    convert_checkpoint.main([str(release["checkpoint"]), str(out)])
    converted = llama.load_mumu(out, release["llama_dir"], release["mert_path"], release["vit_path"],
                                release["vivit_path"])
    batch = requests(pipeline, media)
    tokens = torch.tensor([pipeline.tokenizer.encode("Describe it")] * len(batch))
    torch.testing.assert_close(converted.model.logits(tokens, converted.encode_inputs(batch)),
                               pipeline.model.logits(tokens, pipeline.encode_inputs(batch)), rtol=0, atol=0)


def test_inference_writes_music_with_the_m2ugen_flags(release, media, tmp_path, capsys):
    flags = ["--model", release["checkpoint"], "--llama_dir", release["llama_dir"], "--mert_path",
             release["mert_path"], "--vit_path", release["vit_path"], "--vivit_path", release["vivit_path"],
             "--music_decoder", "musicgen", "--music_decoder_path", release["music_decoder_path"],
             "--dtype", "float32"]  # an exact answer is asserted: float32, whatever --dtype auto picks here
    request = ["--prompt", "Generate a music", "--image_file", media / "red.png", "--audio_file", media / "tune.wav",
               "--output_dir", tmp_path / "out", "--music_seconds", "0.4", "--music_temperature", "0",
               "--temperature", "0", "--max_gen_len", "40"]
    status, out, err = run_here(inference.main, [*flags, *request], capsys)  # inference.py in this process
    assert status == 0, err
    assert "A: Here is a calm music." in out
    written = sorted((tmp_path / "out").glob("*.wav"))
    assert len(written) == 1 and f"Music: {written[0]}" in out
    wave, rate = soundfile.read(written[0])
    assert rate == 32000 and abs(len(wave) / rate - 0.4) < 0.1

    for extra, message in (
            (["--image_file", media / "red.png", "--vit_path", ""], "--image_file needs its encoder"),
            (["--image_file", media / "clip.mkv"], "cannot"),
            (["--music_seconds", "1000"], "--music_seconds 1000"),
            (["--prompt", " "], "empty prompt")):
        status, _, err = run_here(inference.main, [*flags, *extra], capsys)
        assert status == 2 and message in err, (extra, err)
        assert len(err.strip().splitlines()) == 1, err


def test_audioldm2_checkpoint_makes_music_both_ways(tmp_path, sentencepiece_model, media):
    """An M2UGen-AudioLDM2 layout (projector: one row of T5 + GPT-2 states) through the tiny diffusers
    pipeline: the answer's text and the projector output each give music of the asked length; music
    editing is a clip plus an instruction."""
    release = write_tiny_mumu_release(tmp_path / "ldm", sentencepiece_model, decoder="audioldm2")
    pipeline = llama.load_mumu(release["checkpoint"], release["llama_dir"], release["mert_path"],
                               music_decoder_path=release["music_decoder_path"])
    assert pipeline.model.config.music_decoder == "audioldm2" and pipeline.model.config.projector_queries == 1
    clip = llama.load_audio(media / "tune.wav", pipeline.sample_rate)
    reply = pipeline.respond([Request("Generate a music", audio=clip)], max_new_tokens=40)[0]
    assert reply.conditioning.shape == (1, pipeline.decoder.condition_size)
    rate = pipeline.decoder.sample_rate
    for conditioning in ("text", "projector"):
        wave = pipeline.music(reply, 1.0, conditioning=conditioning, seed=0, steps=2)
        assert wave.ndim == 1 and abs(len(wave) / rate - 1.0) < 0.1, (conditioning, len(wave))


def test_mert_weight_norm_names_both_load(tmp_path):
    """MERT's hub folder stores the positional convolution as weight_g / weight_v; the copy inside an
    M2UGen checkpoint.pth (and a folder saved by newer torch) uses the parametrised names."""
    from llama.testing.tiny import write_tiny_mert

    reference = write_tiny_mert(tmp_path / "legacy")
    assert any(k.endswith("weight_g") for k in torch.load(tmp_path / "legacy" / "pytorch_model.bin",
                                                                      weights_only=True))
    write_tiny_mert(tmp_path / "parametrised")
    torch.save(reference.state_dict(), tmp_path / "parametrised" / "pytorch_model.bin")
    clip = np.random.default_rng(0).standard_normal(24000).astype(np.float32)
    legacy, parametrised = (llama.load_mert(tmp_path / name).layer_means([clip]) for name in ("legacy", "parametrised"))
    assert torch.equal(legacy, parametrised)


def test_a_checkpoint_larger_than_memory_is_mapped_shared(tmp_path, monkeypatch):
    """The kernel refuses a copy-on-write map of a file larger than RAM + swap (the 26-31 GB M2UGen
    checkpoints on a 24 GB machine): torch_load then maps it shared, which it allows."""
    import mmap

    from llama.files import torch_load

    torch.save({"model": {"w": torch.arange(4.0)}}, tmp_path / "big.pth")
    real_load, modes = torch.load, []

    def load(*args, **kwargs):
        shared = torch.serialization.get_default_mmap_options() == mmap.MAP_SHARED
        modes.append("shared" if shared else "private")
        if not shared:  # what the kernel answers for a file larger than RAM + swap
            raise RuntimeError("unable to mmap 26038293391 bytes from file <big.pth>: Cannot allocate memory (12)")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load)
    assert torch.equal(torch_load(tmp_path / "big.pth")["model"]["w"], torch.arange(4.0))
    assert modes == ["private", "shared"]


def test_dropping_the_pages_of_a_mapped_tensor_keeps_its_values(tmp_path):
    from llama.files import page_dropper, torch_load

    torch.save({"w": torch.randn(300_000).half()}, tmp_path / "w.pth")
    mapped = torch_load(tmp_path / "w.pth")["w"]
    before, elsewhere = mapped.clone(), torch.randn(300_000)
    kept = elsewhere.clone()
    drop = page_dropper(tmp_path / "w.pth")
    drop(mapped)
    drop(elsewhere)  # not from the file: left alone
    assert torch.equal(mapped, before) and torch.equal(elsewhere, kept)
