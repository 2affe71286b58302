"""The adapter listens: a tiny MU-LLaMA pretrained through train.py on synthetic music (the README's
tiny pipeline) names the instrument family of held-out clips far above chance, and falls to about
chance when each question is answered with another clip's audio."""

import json
import subprocess
import sys
import time

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "MU-LLaMA"))

import train  # noqa: E402

import llama  # noqa: E402
from llama.data.synthetic import evaluate  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """scripts/make_tiny_models.py with its defaults, then configs/tiny-pretrain.yaml through train.py."""
    root = tmp_path_factory.mktemp("learning")
    tiny = root / "tiny"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_models.py"), "--out", str(tiny)], check=True,
                   capture_output=True)
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
