import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from llama import CheckpointError, ModelArgs, MULLaMA, MULLaMAConfig, Transformer, format_prompt, load, read_mu_llama
from llama.checkpoints.names import from_upstream, is_trained_key, to_upstream
from llama.prompt import IGNORE_INDEX
from llama.testing.releases import tiny_mu_llama, write_tiny_release
from llama.training.stages import set_trainable, trained_names

from conftest import ROOT, run_here

sys.path.insert(0, str(ROOT / "MU-LLaMA"))

import inference  # noqa: E402

RATE = 24000


def logits(model, tokens, means):
    """MU-LLaMA's logits for clips given by their MERT layer means."""
    return model.logits(tokens, {"music": model.features("music", means)})


def set_phase(model, phase: str) -> list[str]:
    return set_trainable(model, trained_names(model, ("mu-llama", phase)))


def clip(seconds, seed):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * RATE)).astype(np.float32)


@pytest.fixture(scope="module")
def release(tmp_path_factory, sentencepiece_model):
    return write_tiny_release(tmp_path_factory.mktemp("release"), sentencepiece_model)


def test_upstream_prompt_is_byte_exact():
    expected = ("Below is an instruction that describes a task, paired with an input that provides further "
                "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
                "Describe the music\n\n### Input:\n<built-in function input>\n\n### Response:")
    assert format_prompt("Describe the music") == expected
    assert format_prompt("Q", "alpaca").endswith("### Instruction:\nQ\n\n### Response:")
    with pytest.raises(ValueError, match="unknown prompt template"):
        format_prompt("Q", "vicuna")


def test_7b_trainable_parameter_counts():
    """The original code's §2.8 counts, on the meta device (no weights)."""
    counts = {}
    for phase in ("pretrain", "finetune"):
        finetune = phase == "finetune"
        with torch.device("meta"):
            llama = Transformer(ModelArgs(w_bias=finetune, w_lora=finetune))
            model = MULLaMA(llama, None, MULLaMAConfig(phase=phase))
        set_phase(model, phase)
        counts[phase] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert counts == {"pretrain": 608_273_434, "finetune": 41_340_928}


def test_checkpoint_names_are_the_original_codes_and_agree_with_ownership():
    model = tiny_mu_llama(phase="finetune")
    names = set(model.checkpoint_state())
    upstream = {to_upstream(k) for k in model.state_dict()}
    bridge = {k for k in upstream if k.startswith("mu_mert_")}
    assert bridge == {"mu_mert_agg.weight", "mu_mert_agg.bias", "mu_mert_proj.weight", "mu_mert_proj.bias",
                      *(f"mu_mert_{part}_{k}.weight" for part in ("norm", "f1", "f2", "f3") for k in (1, 2, 3))}
    assert all(from_upstream(to_upstream(k)) == k for k in model.state_dict())
    # the reader of checkpoint.pth decides by name what the model decides by ownership
    assert {k for k in upstream if is_trained_key(k)} == {to_upstream(k) for k in names}


def test_zero_gates_give_the_plain_backbone():
    model = tiny_mu_llama()
    tokens = torch.randint(0, 32000, (2, 9))
    means = torch.randn(2, 3, 32)
    with torch.no_grad():
        gated = logits(model, tokens, means)
        for layer in model.llama.layers:
            layer.attention.gate.zero_()
        assert torch.equal(logits(model, tokens, means), model.llama(tokens))
    assert not torch.allclose(gated, model.llama(tokens), atol=1e-3)


@pytest.mark.parametrize("phase", ["pretrain", "finetune"])
def test_gradients_reach_exactly_the_trainable_set(phase):
    model = tiny_mu_llama(phase=phase, query_layer=2)
    trainable = set(set_phase(model, phase))
    tokens = torch.randint(0, 32000, (2, 9))
    labels = tokens.clone()
    labels[:, :4] = IGNORE_INDEX
    model(tokens, labels, {"music": (torch.arange(2), torch.randn(2, 3, 32))})[0].backward()
    got = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    if phase == "pretrain":
        # the gate of a layer without adapter input is trainable but receives no gradient (as upstream)
        unadapted_gate = "llama.layers.0.attention.gate"
        assert trainable - got == {unadapted_gate}
        assert {n for n in trainable if n.startswith("music_bridge.")} and "prefix_query.weight" in trainable
    else:
        assert got == trainable
        assert all(("norm" in n or "bias" in n or "lora" in n) and n.startswith("llama.") for n in trainable)
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if n in trainable)
    assert not any(p.requires_grad for n, p in model.named_parameters() if n not in trainable)


def test_loss_counts_answer_tokens_only():
    model = tiny_mu_llama()
    tokens = torch.randint(0, 32000, (1, 8))
    labels = torch.full_like(tokens, IGNORE_INDEX)
    means = torch.randn(1, 3, 32)
    inputs = {"music": (torch.arange(1), means)}
    with torch.no_grad():
        assert model(tokens, labels, inputs) == (0.0, 0.0)
        labels[0, 5:] = tokens[0, 5:]
        answer = logits(model, tokens, means)[0, 4:7]
        expected = torch.nn.functional.cross_entropy(answer, tokens[0, 5:])
        assert torch.allclose(model(tokens, labels, inputs)[0], expected)


def test_released_checkpoint_layout_loads_and_matches_converted(release, tmp_path):
    loaded = load(release["checkpoint"], release["llama_dir"], release["mert_path"])
    tensors, config = read_mu_llama(release["checkpoint"])
    assert config.phase == "finetune" and config.query_layer == 2 and config.lora_rank == 4
    assert not any(k.startswith(("mert_model.", "optimizer")) for k in tensors)
    assert "llama.layers.0.attention.wq.weight" not in tensors  # frozen base copies are not read
    tokens = torch.randint(0, 32000, (2, 7))
    means = torch.randn(2, 3, 32)
    with torch.no_grad():
        expected = logits(release["model"], tokens, means)
        got = logits(loaded.model, tokens, means)
    assert torch.allclose(got, expected, atol=1e-5)  # the checkpoint's norms win over the base's

    out = tmp_path / "mu_llama.safetensors"
    subprocess.run([sys.executable, str(ROOT / "MU-LLaMA" / "convert_checkpoint.py"), str(release["checkpoint"]),
                    str(out)], check=True, capture_output=True)
    converted = load(out, release["llama_dir"], release["mert_path"])
    with torch.no_grad():
        assert torch.equal(logits(converted.model, tokens, means), got)
    assert out.stat().st_size < release["checkpoint"].stat().st_size / 3


def test_wrong_checkpoint_is_refused(release, tmp_path):
    torch.save({"model": {"llama.norm.weight": torch.ones(3)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a MU-LLaMA checkpoint"):
        load(tmp_path / "other.pth", release["llama_dir"], release["mert_path"])
    with pytest.raises(CheckpointError, match="not found"):
        load(tmp_path / "missing.pth", release["llama_dir"], release["mert_path"])


def test_batch_of_clips_and_questions_equals_one_by_one(release):
    model = load(release["checkpoint"], release["llama_dir"], release["mert_path"])
    clips = [clip(2.0, 0), clip(0.7, 1), clip(3.5, 2)]
    questions = ["Describe the audio", "What is the tempo of this song?"]
    pairs = [(c, q) for c in clips for q in questions]
    batched = model.answer([c for c, _ in pairs], [q for _, q in pairs], max_new_tokens=8)
    alone = [model.answer([c], [q], max_new_tokens=8)[0] for c, q in pairs]
    assert batched == alone
    assert len(set(batched)) > 1  # the answers do depend on the clip and question


def test_inference_cli_end_to_end(release, tmp_path, capsys):
    paths = []
    for i, seconds in enumerate((1.0, 2.5)):
        paths.append(tmp_path / f"song{i}.wav")
        soundfile.write(paths[-1], clip(seconds, i), 44100)
    status, out, err = run_here(inference.main, [  # inference.py's command line, in this process
        "--model", release["checkpoint"], "--llama_dir", release["llama_dir"], "--mert_path", release["mert_path"],
        "--audio_path", paths[0], paths[1], "--question", "Describe the audio", "What genre is it?",
        "--max_gen_len", "6", "--temperature", "0"], capsys)
    assert status == 0, err
    lines = out.splitlines()
    assert sum(line.startswith("Audio File:") for line in lines) == 4  # 2 files x 2 questions
    assert sum(line.startswith("Q:") for line in lines) == 4 and sum(line.startswith("A:") for line in lines) == 4


def test_inference_answers_the_good_files_and_reports_the_bad_one(release, tmp_path):
    good = tmp_path / "good.wav"
    soundfile.write(good, clip(1.0, 0), 24000)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    command = [sys.executable, str(ROOT / "MU-LLaMA" / "inference.py"), "--model", str(release["checkpoint"]),
               "--llama_dir", str(release["llama_dir"]), "--mert_path", str(release["mert_path"]),
               "--max_gen_len", "4", "--temperature", "0"]
    result = subprocess.run([*command, "--audio_path", str(good), str(empty)], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"Audio File: {good}" in result.stdout and str(empty) not in result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"inference.py: error: not answered: {empty} is an empty file (0 bytes)"
    assert "Traceback" not in result.stderr

    # a user's mistake is one line, no traceback; --debug shows the traceback
    missing = [*command[:5], str(tmp_path / "nowhere"), *command[6:], "--audio_path", str(good)]
    result = subprocess.run(missing, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"inference.py: error: --llama_dir {tmp_path / 'nowhere'}: "
                                                  "no such file or folder"]
    assert "Traceback" in subprocess.run([*missing, "--debug"], capture_output=True, text=True).stderr


@pytest.mark.parametrize("flag,value,message", [("--temperature", "-1", "must be >= 0"),
                                                ("--top_p", "0", r"must be in \(0, 1\]"),
                                                ("--max_gen_len", "0", "must be at least 1")])
def test_sampling_flags_are_checked(flag, value, message, capsys):
    with pytest.raises(SystemExit) as error:  # argparse's own message and status, before anything loads
        inference.main(["--audio_path", "x.wav", flag, value])
    assert error.value.code == 2 and re.search(f"argument {flag}: {message}", capsys.readouterr().err)
