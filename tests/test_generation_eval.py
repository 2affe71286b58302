"""Generated-music evaluation: FAD against closed forms, CLAP score and the CLAP tagger against a tiny
CLAP's own outputs, KL, and evaluate_generation.py and generate_mumu.py end to end on tiny models."""

import importlib.machinery
import importlib.util
import json
import shutil
import sys
import types

import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F
from scipy.linalg import sqrtm
from scipy.special import softmax

from llama.cli import UsageError, run_main
from llama.data.dataset import derangement
from llama.testing.decoders import write_tiny_clap
from llama.testing.releases import chained_mumu, write_tiny_mumu_release
from llama.testing.tiny import write_tiny_mert
from llama.testing.vision import write_image, write_video

from conftest import ROOT

sys.path.insert(0, str(ROOT / "ModelEvaluations"))

import evaluate_generation  # noqa: E402
import generate_mumu  # noqa: E402

from llama.evaluation import generation_metrics as gm  # noqa: E402


def tone(freq: float, seconds: float, rate: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * freq * t) + noise * np.random.default_rng(seed).standard_normal(len(t))


def gaussian_set(mean: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """2D points mean +- c_k e_k whose sample mean is `mean` and sample covariance (N - 1) is diag(variances)."""
    n = 2 * len(mean)
    offsets = np.diag(np.sqrt(variances * (n - 1) / 2))
    return mean + np.concatenate([offsets, -offsets])


def one_line_error(capsys, main, argv) -> str:
    capsys.readouterr()  # what came before
    with pytest.raises(SystemExit) as exit_:
        run_main(main, argv)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1, err
    return err


# --- metrics ------------------------------------------------------------------------------------------


def test_fad_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(0)
    for n, d in ((60, 8), (6, 32)):  # full-rank and singular covariances
        x = rng.standard_normal((n, d)) * rng.uniform(0.1, 3.0, d) + 5
        assert gm.frechet_distance(x, x) < 1e-6
        assert gm.frechet_distance(x, x[::-1]) < 1e-6  # the order of a set does not matter
        assert gm.frechet_distance(x, x + 1) == pytest.approx(d, rel=1e-9)  # a shift costs its squared length


def test_fad_matches_the_closed_form_of_two_gaussians():
    rng = np.random.default_rng(1)
    d = 6
    mean_a, mean_b = rng.standard_normal(d), rng.standard_normal(d)
    var_a, var_b = rng.uniform(0.2, 4.0, d), rng.uniform(0.2, 4.0, d)
    a, b = gaussian_set(mean_a, var_a), gaussian_set(mean_b, var_b)
    np.testing.assert_allclose(np.cov(a, rowvar=False), np.diag(var_a), atol=1e-12)
    np.testing.assert_allclose(b.mean(0), mean_b, atol=1e-12)
    expected = np.square(mean_a - mean_b).sum() + np.square(np.sqrt(var_a) - np.sqrt(var_b)).sum()
    assert gm.frechet_distance(a, b) == pytest.approx(expected, rel=1e-10)
    # a rotation of both sets makes the covariances full and leaves the distance as it was
    rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
    assert gm.frechet_distance(a @ rotation, b @ rotation) == pytest.approx(expected, rel=1e-10)
    # and the textbook route through scipy's sqrtm agrees on sets of unequal size
    x, y = rng.standard_normal((40, 5)), 2 * rng.standard_normal((30, 5)) + 1
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    textbook = (np.square(x.mean(0) - y.mean(0)).sum()
                + np.trace(cov_x + cov_y - 2 * sqrtm(cov_x @ cov_y).real))
    assert gm.frechet_distance(x, y) == pytest.approx(textbook, rel=1e-8)
    with pytest.raises(ValueError, match="at least 2"):
        gm.frechet_distance(x[:1], y)


def test_kl_is_zero_for_equal_distributions_and_positive_otherwise():
    rng = np.random.default_rng(2)
    p, q = softmax(rng.standard_normal((4, 7)), -1), softmax(rng.standard_normal((4, 7)), -1)
    same = gm.kl_divergence(p, p)
    assert np.abs(same.per_pair).max() < 1e-12 and same.mean == pytest.approx(0, abs=1e-12)
    kl = gm.kl_divergence(p, q)
    assert (kl.per_pair > 0).all()
    np.testing.assert_allclose(kl.per_pair, (p * np.log(p / q)).sum(-1), rtol=1e-4)
    assert kl.mean == pytest.approx(kl.per_pair.mean())
    assert 0 < gm.kl_divergence([[0.5, 0.5]], [[1.0, 0.0]]).mean < np.inf  # a class never given costs a finite amount


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clap")
    write_tiny_clap(folder)
    return folder


@pytest.fixture(scope="module")
def clap(clap_dir):
    return gm.load_clap(clap_dir)


def test_clap_score_and_tagger_are_the_models_own(clap):
    model, processor = clap
    rate = processor.feature_extractor.sampling_rate
    waves = [tone(220, 1.0, rate), tone(3000, 2.0, rate, noise=0.3)]
    texts = ["calm piano melody", "fast rock drums with guitar"]
    score = gm.clap_score(model, processor, texts, waves)
    tokens = processor.tokenizer(texts, padding=True, return_tensors="pt")
    features = processor.feature_extractor(waves, sampling_rate=rate, return_tensors="pt")
    with torch.no_grad():
        text = model.get_text_features(**tokens).pooler_output
        audio = model.get_audio_features(**features).pooler_output
        logits = model(**tokens, **features).logits_per_audio
    expected = F.cosine_similarity(text, audio, dim=-1).numpy()
    np.testing.assert_allclose(score.per_pair, expected, atol=1e-6)
    assert score.mean == pytest.approx(expected.mean(), abs=1e-6)
    # the tagger: CLAP's zero-shot distribution over the texts
    probabilities = gm.clap_tag_probabilities(model, audio.double().numpy(),
                                              gm.clap_text_embeddings(model, processor, texts))
    np.testing.assert_allclose(probabilities, logits.softmax(-1).numpy(), atol=1e-6)


def test_vggish_needs_its_package_and_averages_its_frames(monkeypatch):
    if importlib.util.find_spec("torchvggish") is None:
        with pytest.raises(UsageError, match="pip install torchvggish"):
            gm.make_embedder("vggish")
    # torchvggish's interface: examples [n, 1, 96, 64] of 0.96 s, and a network giving [n, 128]
    fake = types.ModuleType("torchvggish")
    fake.__spec__ = importlib.machinery.ModuleSpec("torchvggish", None)
    fake.waveform_to_examples = lambda wave, rate: torch.tensor(
        wave[: len(wave) // 15360 * 15360].reshape(-1, 1, 96, 160)[..., :64], dtype=torch.float32)
    fake.vggish = lambda postprocess: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(96 * 64, 128))
    monkeypatch.setitem(sys.modules, "torchvggish", fake)
    embedder = gm.make_embedder("vggish")
    long, short = tone(440, 3.0, 16000), tone(440, 0.2, 16000)
    rows = embedder([long, short])
    with torch.no_grad():
        frames = embedder.model(fake.waveform_to_examples(long, 16000))
    assert rows.dtype == np.float64 and rows.shape == (2, 128)
    np.testing.assert_allclose(rows[0], frames.mean(0).numpy(), atol=1e-6)  # the mean of its three examples
    assert np.isfinite(rows[1]).all()  # a clip shorter than one example is padded to one


# --- evaluate_generation.py -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory):
    """Four reference tones, four generated clips near them with their requests, one listed clip that is
    missing and one request that made no music; a tiny MERT."""
    root = tmp_path_factory.mktemp("eval")
    write_tiny_mert(root / "MERT")
    (root / "refs").mkdir()
    (root / "gen").mkdir()
    freqs = (220, 440, 880, 1760)
    records = []
    for i, freq in enumerate(freqs):
        soundfile.write(root / "refs" / f"r{i}.wav", tone(freq, 1.0, 24000), 24000)
        soundfile.write(root / "gen" / f"g{i}.wav", tone(freq * 1.02, 0.8, 32000, noise=0.05, seed=i), 32000)
        records.append({"id": f"g{i}", "prompt": f"a {freq} hz tone", "output": f"g{i}.wav",
                        "reference": str(root / "refs" / f"r{i}.wav")})
    records.append({"id": "lost", "prompt": "a lost tone", "output": "lost.wav",
                    "reference": str(root / "refs" / "r0.wav")})
    records.append({"id": "silent", "prompt": "no music", "error": "no [AUD] tokens"})
    (root / "gen" / "generated.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def test_evaluate_reports_the_model_beside_both_controls(eval_set, clap_dir, tmp_path, capsys):
    out = tmp_path / "metrics"
    evaluate_generation.main(["--generated", str(eval_set / "gen" / "generated.jsonl"), "--reference",
                              str(eval_set / "refs"), "--embedder", "mert", "--mert_path", str(eval_set / "MERT"),
                              "--clap_path", str(clap_dir), "--tagger", "clap", "--output", str(out),
                              "--min_fad_clips", "2", "--shuffled", str(eval_set / "gen" / "generated.jsonl")])
    captured = capsys.readouterr()
    assert "lost.wav" in captured.err  # named on stderr
    results = json.loads((out / "results.json").read_text())
    model, control, halves = results["model"], results["shuffled_control"], results["reference_halves"]
    assert model["fad"] > 0 and model["fad_clips"] == [4, 4]
    assert halves["fad"] > 0 and halves["fad_clips"] == [2, 2]
    assert -1 <= model["clap_score"] <= 1 and model["clap_score_pairs"] == 4 and model["kl"] > 0
    assert -1 <= control["clap_score"] <= 1 and control["kl"] > 0 and control["kl_pairs"] == 4
    # --shuffled (here the same outputs, standing in for a --shuffle_requests run) is scored as the model
    shuffled = results["shuffled_requests"]
    assert shuffled["fad"] == pytest.approx(model["fad"])
    assert shuffled["clap_score"] == pytest.approx(model["clap_score"])
    counts = results["counts"]
    assert (counts["generated_listed"], counts["generation_errors"], counts["unreadable_generated"]) == (5, 1, 1)
    assert counts["errors"] == {"silent": "no [AUD] tokens"}
    assert list(counts["unreadable"]) == [str(eval_set / "gen" / "lost.wav")]
    settings = results["settings"]
    assert settings["embedder"] == "mert" and settings["mert_path"] == str(eval_set / "MERT")
    assert "transformers" in settings["versions"] and settings["tags"] == list(gm.DEFAULT_TAGS)

    # the model's row is the metrics of the pairs as listed, the control's those of the derangement
    mert = gm.MertEmbedder(eval_set / "MERT")
    gen, _ = gm.embed_files(mert, [eval_set / "gen" / f"g{i}.wav" for i in range(4)])
    refs, _ = gm.embed_files(mert, [eval_set / "refs" / f"r{i}.wav" for i in range(4)])
    assert model["fad"] == pytest.approx(gm.frechet_distance(np.stack(list(gen.values())),
                                                             np.stack(list(refs.values()))), rel=1e-9)
    per_clip = [json.loads(line) for line in (out / "per_clip.jsonl").read_text().splitlines()]
    order = derangement(4, 0)
    assert [c["clap_score_shuffled_with"] for c in per_clip[:4]] == [f"g{j}" for j in order]
    assert np.mean([c["clap_score"] for c in per_clip[:4]]) == pytest.approx(model["clap_score"])
    assert np.mean([c["kl_shuffled"] for c in per_clip[:4]]) == pytest.approx(control["kl"])
    table = (out / "results.md").read_text()
    assert "| reference_halves |" in table and "shuffled_control" in table.split("How to read")[1]
    assert table in captured.out

    # FAD on CLAP embeddings, references named by the records, KL off; at the default minimum set size
    # (100 clips) FAD is n/a on these 4 clips, and says why
    evaluate_generation.main(["--generated", str(eval_set / "gen" / "generated.jsonl"), "--clap_path", str(clap_dir),
                              "--output", str(out)])
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["embedder"] == "clap" and results["model"]["fad_clips"] == [4, 4]
    assert results["model"].get("kl") is None and results["reference_halves"]["fad_clips"] == [2, 2]
    assert results["model"]["fad"] is None and "fewer than 100 clips" in results["model"]["fad_why"]
    assert "shuffled_requests" not in results and "too few for FAD" in (out / "results.md").read_text()


def test_evaluate_bad_input_is_one_line(eval_set, tmp_path, capsys):
    generated = str(eval_set / "gen" / "generated.jsonl")
    err = one_line_error(capsys, evaluate_generation.main, ["--generated", generated, "--mert_path", "m",
                                                            "--embedder", "mert"])
    assert "CLAP score needs --clap_path" in err
    (tmp_path / "empty").mkdir()
    err = one_line_error(capsys, evaluate_generation.main, ["--generated", str(tmp_path / "empty"), "--metrics", "fad",
                                                            "--embedder", "mert", "--mert_path", "m"])
    assert "no generated clips" in err
    err = one_line_error(capsys, evaluate_generation.main, ["--generated", str(eval_set / "gen"), "--metrics", "fad",
                                                            "--embedder", "mert", "--mert_path", "m", "--reference",
                                                            str(tmp_path / "empty")])
    assert "no audio files" in err
    err = one_line_error(capsys, evaluate_generation.main, ["--generated", generated, "--tagger", "clap",
                                                            "--metrics", "fad", "--embedder", "mert"])
    assert "--tagger clap needs --clap_path" in err


# --- generate_mumu.py --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release(tmp_path_factory, sentencepiece_model):
    """The tiny MuMu-LLaMA release of test_mumu.py (MERT, ViT, tiny MusicGen, M2UGen checkpoint.pth),
    its model asking for music whatever the request."""
    return write_tiny_mumu_release(tmp_path_factory.mktemp("mumu"), sentencepiece_model, build=chained_mumu)


IDS = ["music", "edit", "film", "broken", "long"]


@pytest.fixture(scope="module")
def requests_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("requests")
    soundfile.write(root / "tune.wav", tone(440, 1.0, 24000, noise=0.2), 24000)
    (root / "broken.wav").write_bytes(b"")
    write_image(root / "red.png", seed=1)
    write_video(root / "clip.mkv", frames=40, seed=2)
    requests = [
        {"id": "music", "prompt": "Generate a music", "seconds": 0.2, "reference": "tune.wav"},
        {"id": "edit", "prompt": "Generate a music", "audio_file": "tune.wav", "image_file": "red.png"},
        {"id": "film", "prompt": "Generate a music for this video", "video_file": "clip.mkv"},
        {"id": "broken", "prompt": "Generate a music", "audio_file": "broken.wav"},
        {"id": "long", "prompt": "Generate a music", "seconds": 1000},
    ]
    (root / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in requests))
    return root / "requests.jsonl"


def generate(release, data, out, *extra):
    return generate_mumu.main(["--model", str(release["checkpoint"]), "--llama_dir", str(release["llama_dir"]),
                               "--mert_path", str(release["mert_path"]), "--vit_path", str(release["vit_path"]),
                               "--vivit_path", str(release["vivit_path"]),
                               "--music_decoder_path", str(release["music_decoder_path"]), "--data", str(data),
                               "--output_dir", str(out), "--music_seconds", "0.15", "--music_temperature", "0",
                               "--max_gen_len", "40", "--batch_size", "3",
                               "--dtype", "float32", *extra])  # records compared exactly: float32, not auto


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def generated(release, requests_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("generated")
    generate(release, requests_file, out)
    return out


def test_generate_writes_music_and_records_every_request(generated, requests_file):
    records = {r["id"]: r for r in lines(generated / "generated.jsonl")}
    assert list(records) == IDS
    music = records["music"]
    assert music["output"] == "music.wav" and music["seconds"] == 0.2 and "[AUD0]" in music["answer"]
    assert music["reference"] == str((requests_file.parent / "tune.wav").resolve())
    for name, seconds in (("music", 0.2), ("edit", 0.15), ("film", 0.15)):  # the request's, else --music_seconds
        wave, rate = soundfile.read(generated / f"{name}.wav")
        assert rate == 32000 and abs(len(wave) / rate - seconds) < 0.07
    assert records["broken"]["error"].startswith("input:") and "empty file" in records["broken"]["error"]
    assert "seconds" in records["long"]["error"] and "[AUD7]" in records["long"]["answer"]
    assert sorted(p.name for p in generated.glob("*.wav")) == ["edit.wav", "film.wav", "music.wav"]
    meta = json.loads((generated / "generated.meta.json").read_text())
    assert meta["counts"] | {"seconds_this_run": 0} == {"requests": 5, "recorded": 5, "music": 3, "errors": 2,
                                                         "requests_this_run": 5, "music_this_run": 3,
                                                         "seconds_this_run": 0}
    assert meta["settings"]["music_conditioning"] == "text" and meta["settings"]["batch_size"] == 3


def test_generate_resumes_without_redoing_anything(release, generated, requests_file, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(generated, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.wav")}
    text = (out / "generated.jsonl").read_text()
    generate(release, requests_file, out)
    assert "5 requests, 5 already in" in capsys.readouterr().err
    assert (out / "generated.jsonl").read_text() == text
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.wav")} == before
    # a run killed while writing its second batch: three lines kept, a fourth cut short
    kept = text.splitlines(keepends=True)
    (out / "generated.jsonl").write_text("".join(kept[:3]) + kept[3][:20])
    generate(release, requests_file, out)
    assert [r["id"] for r in lines(out / "generated.jsonl")] == IDS
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.wav")} == before  # all made before the kill
    assert lines(out / "generated.jsonl")[3:] == lines(generated / "generated.jsonl")[3:]
    assert json.loads((out / "generated.meta.json").read_text())["counts"]["requests_this_run"] == 2


def test_shuffled_requests_take_another_request_s_prompt(release, requests_file, tmp_path, capsys):
    out = tmp_path / "shuffled"
    generate(release, requests_file, out, "--shuffle_requests", "--max_gen_len", "4")
    records = lines(out / "generated.jsonl")
    prompts = [json.loads(line)["prompt"] for line in requests_file.read_text().splitlines()]
    order = derangement(len(IDS), 0)
    assert [r["prompt_from"] for r in records] == [IDS[j] for j in order]
    assert [r["prompt"] for r in records] == [prompts[j] for j in order]
    assert records[0]["reference"].endswith("tune.wav")  # the inputs and the reference stay the request's
    # four tokens cannot hold [AUD0] .. [AUD7]: recorded as errors, the run went on
    assert all("[AUD0] .. [AUD7]" in r["error"] for r in records if r["id"] != "broken")
    err = one_line_error(capsys, generate_mumu.main, ["--data", str(requests_file), "--output_dir", str(out)])
    assert "other model, shuffle_requests" in err


def test_evaluate_reads_what_generate_writes(generated, clap_dir, tmp_path):
    out = tmp_path / "metrics"
    evaluate_generation.main(["--generated", str(generated / "generated.jsonl"), "--metrics", "clap_score",
                              "--clap_path", str(clap_dir), "--tagger", "clap", "--output", str(out)])
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["clap_score_pairs"] == 3 and results["model"]["kl_pairs"] == 1
    assert results["shuffled_control"]["clap_score_pairs"] == 3
    assert results["shuffled_control"]["kl"] is None  # one pair has no other to be shuffled with
    assert results["counts"]["generation_errors"] == 2
    assert results["settings"]["generation"]["counts"]["music"] == 3
