"""The adapter listens: a tiny MU-LLaMA pretrained through train.py on synthetic music (docs/training.md,
the tiny pipeline) names the instrument family of held-out clips far above chance, and falls to about
chance when each question is answered with another clip's audio. A tiny MuMu-LLaMA trained through
its three stages on the same music and on synthetic images learns what each stage is for."""

import json
import sys
import time

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "MU-LLaMA"))

import train  # noqa: E402

import llama  # noqa: E402
from llama.data.synthetic import evaluate  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tiny_models, tmp_path_factory):
    """scripts/make_tiny_models.py with its defaults (conftest: built once per run), then configs/tiny-pretrain.yaml
    through train.py."""
    root = tmp_path_factory.mktemp("learning")
    tiny = tiny_models
    synthetic = tiny / "synthetic"
    start = time.perf_counter()
    train.main(["--config", str(ROOT / "configs" / "tiny-pretrain.yaml"), "--llama_path", str(tiny / "LLaMA"),
                "--output_dir", str(root / "pretrain"), "--set", f"mert_path={tiny / 'MERT'}",
                f"feature_cache={tiny / 'cache'}",
                f"data=[{{path: {synthetic / 'train.json'}, audio_root: {synthetic / 'audios'}}}]"])
    print(f"\ntiny pretraining through train.py: {time.perf_counter() - start:.0f} s")
    return {"tiny": tiny, "checkpoint": root / "pretrain" / "checkpoint.safetensors"}


@pytest.mark.slow
def test_trained_model_names_the_instrument_it_hears(tiny):
    model = llama.load(tiny["checkpoint"], tiny["tiny"] / "LLaMA", tiny["tiny"] / "MERT")
    own, answers = evaluate(model, tiny["tiny"] / "synthetic", kinds=["instrument"])
    shuffled, _ = evaluate(model, tiny["tiny"] / "synthetic", kinds=["instrument"], shuffle_seed=0)
    own, shuffled = own["instrument"], shuffled["instrument"]
    print(json.dumps({"questions": own["n"], "accuracy": own["accuracy"], "shuffled_audio": shuffled["accuracy"],
                      "chance": own["chance"], "answers": answers[:5]}))
    assert own["n"] >= 80
    assert own["accuracy"] >= 3 * own["chance"]  # 3x chance: 42.9 % for 7 families
    assert shuffled["accuracy"] <= 2 * own["chance"]  # another clip's audio: about chance
    # fluent answers from the training templates, not a bare family name
    assert sum(len(a.split()) >= 3 for a in answers) >= 0.9 * len(answers)


@pytest.mark.slow
def test_tiny_mumu_learns_each_stage(tiny, tmp_path):
    """scripts/train_tiny_mumu.py (docs/mumu-llama.md's table): stage 1 captions name what is heard or seen, stage 2
    asks for music and aligns the projector to the decoder, stage 3 turns an image into its colour's music."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import train_tiny_mumu

    report = train_tiny_mumu.main(["--tiny", str(tiny["tiny"]), "--out", str(tmp_path / "mumu")])
    print(json.dumps(report))
    one, two, three = report["stage1"], report["stage2"], report["stage3"]
    for modality in ("music", "image"):
        own, shuffled = one["own_input"][modality], one["shuffled_input"][modality]
        assert own["n"] >= 60 and own["accuracy"] >= 2.5 * own["chance"], modality  # measured: 5.6x (music), 3x (image)
        assert shuffled["accuracy"] <= 1.5 * own["chance"], modality  # another input: about chance
    assert two["audio_tokens_in_order"] >= 0.95 and two["mse"] <= 0.6 * two["mse_of_mean_target"]
    assert three["audio_tokens_in_order"] >= 0.95
    assert three["mse_to_own_colour_target"] <= 0.8 * three["mse_to_other_colours_targets"]
    assert three["nearest_is_own_colour"] >= 1.5 * three["chance"]
