"""Answers and logits of the demo model and of a tiny random MU-LLaMA in the released checkpoint.pth
layout, against a stored reference (tests/data/reference_answers.json) written before the package was
restructured: a change of structure must not change a single answer.

    .venv/bin/python tests/test_reference_answers.py --write   # rewrite the reference (say why in the commit)
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import llama
from llama.prompt import format_prompt

from conftest import ROOT

REFERENCE = Path(__file__).parent / "data" / "reference_answers.json"
QUESTIONS = ["Describe the music in detail", "What is the tempo?"]


def tiny_clips() -> list[np.ndarray]:
    t = np.arange(24000) / 24000
    return [(0.5 * np.sin(2 * np.pi * 330 * t)).astype(np.float32),
            np.random.default_rng(0).uniform(-0.3, 0.3, 36000).astype(np.float32)]


def demo_clips() -> list[np.ndarray]:
    return [llama.load_audio(p) for p in sorted((ROOT / "demo" / "examples").glob("*.wav"))]


def outputs(model, clips) -> dict:
    """Greedy answers to every (clip, question) pair, and the top-8 next-token logits after each prompt."""
    pairs = [(c, q) for c in clips for q in QUESTIONS]
    answers = model.answer([c for c, _ in pairs], [q for _, q in pairs], max_new_tokens=16)
    features = model.encode("music", clips)
    rows = []
    with torch.inference_mode():
        for i, clip_features in enumerate(features):
            for q in QUESTIONS:
                tokens = torch.tensor([model.tokenizer.encode(format_prompt(q, model.template),
                                                              bos=True)])
                logits = model.model.logits(tokens, {"music": clip_features[None]})[0, -1]
                top = logits.topk(8)
                rows.append({"clip": i, "question": q, "top_ids": top.indices.tolist(),
                             "top_logits": top.values.tolist(), "mean_logit": logits.double().mean().item()})
    return {"answers": answers, "logits": rows}


def tiny_release_model(root: Path):
    from llama.testing.releases import write_tiny_release
    from llama.testing.tiny import sentencepiece_model_file
    release = write_tiny_release(root, sentencepiece_model_file())
    return llama.load(release["checkpoint"], release["llama_dir"], release["mert_path"])


def demo_model():
    return llama.load(ROOT / "demo" / "checkpoint.safetensors", ROOT / "ckpts" / "SmolLM2-135M-Instruct",
                      ROOT / "demo" / "MERT")


def assert_same(got: dict, expected: dict):
    assert got["answers"] == expected["answers"]
    for g, e in zip(got["logits"], expected["logits"], strict=True):
        assert g["top_ids"] == e["top_ids"], (g, e)
        np.testing.assert_allclose(g["top_logits"], e["top_logits"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(g["mean_logit"], e["mean_logit"], rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


def test_tiny_release_answers_as_before(reference, tmp_path):
    assert_same(outputs(tiny_release_model(tmp_path), tiny_clips()), reference["tiny_release"])


def test_demo_model_answers_as_before(reference):
    assert_same(outputs(demo_model(), demo_clips()), reference["demo"])


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        written = {"tiny_release": outputs(tiny_release_model(Path(tmp)), tiny_clips()),
                   "demo": outputs(demo_model(), demo_clips())}
    REFERENCE.write_text(json.dumps(written, indent=1) + "\n")
    print(f"wrote {REFERENCE}")
