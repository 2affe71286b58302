import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml
from safetensors.torch import load_file

from conftest import ROOT

sys.path.insert(0, str(ROOT / "MU-LLaMA"))

import train  # noqa: E402

from llama.data.dataset import load_records  # noqa: E402
from llama.testing.tiny import write_tiny_llama, write_tiny_mert  # noqa: E402

ANSWERS = ["A calm piano piece.", "A loud brass fanfare with drums.", "Soft strings, slow tempo.", "Fast guitar."]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    (root / "audios").mkdir()
    records = []
    for i in range(8):
        soundfile.write(root / "audios" / f"{i:06d}.wav", rng.uniform(-0.3, 0.3, 12000 + 3000 * i), 24000)
        records.append({"audio_name": f"{i:06d}.wav", "conversation": [
            {"from": "human", "value": "Describe the audio"}, {"from": "gpt", "value": ANSWERS[i % 4]}]})
    (root / "qa.json").write_text(json.dumps(records))
    write_tiny_llama(root / "LLaMA")
    write_tiny_mert(root / "MERT")
    config = {"phase": "pretrain", "llama_path": str(root / "LLaMA"), "mert_path": str(root / "MERT"),
              "query_layer": 2, "bridge_width": 64, "base_dtype": "float32",
              "data": [{"path": str(root / "qa.json"), "audio_root": str(root / "audios")}],
              "max_words": 96, "batch_size": 2, "accum_iter": 2, "epochs": 3, "split_epoch": 1,
              "warmup_epochs": 1, "lr": 1e-2, "weight_decay": 0.05, "precision": "fp32", "num_workers": 0,
              "log_every": 1, "save_every": 1, "seed": 0}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root


def run(setup, out, *extra):
    train.main(["--config", str(setup / "config.yaml"), "--output_dir", str(out), *extra])
    return load_file(out / "checkpoint.safetensors"), steps(out / "log.jsonl")


def steps(log) -> list[dict]:
    """The logging steps of a log.jsonl (its other lines: the data report each start writes)."""
    return [r for r in map(json.loads, Path(log).open()) if "step" in r]


def test_resumed_run_ends_with_the_same_weights(setup, tmp_path):
    full, log = run(setup, tmp_path / "full")
    assert [r["step"] for r in log] == list(range(1, 7))  # 3 epochs x 8 samples / (2 x 2)
    assert {"step", "epoch", "loss", "lr", "tokens_per_s"} <= set(log[0])
    assert all(np.isfinite(r["loss"]) for r in log)
    run(setup, tmp_path / "cut", "--set", "max_steps=4")  # stopped mid-epoch, as by a kill after a save
    resumed, _ = run(setup, tmp_path / "cut", "--resume")
    assert full.keys() == resumed.keys() and any(k.startswith("mu_mert_") for k in full)
    for key in full:
        assert torch.allclose(full[key], resumed[key], atol=1e-6), key
    saved = json.loads((tmp_path / "cut" / "checkpoint.json").read_text())
    assert saved["step"] == 6 and saved["mu_llama"]["phase"] == "pretrain"
    assert not any(k.startswith(("llama.layers.0.attention.wq", "mert.")) for k in full)  # trained tensors only
    assert (tmp_path / "full" / "config.yaml").exists()


CUT_AND_RESUMED = (["max_steps=1"], ["--resume"])  # as if killed after a step, then resumed
WHOLE = ([],)


@pytest.mark.parametrize("fsdp, phase, runs", [(False, "pretrain", WHOLE), (True, "pretrain", CUT_AND_RESUMED),
                                               (True, "finetune", WHOLE)], ids=["ddp", "fsdp", "fsdp-finetune"])
def test_two_processes_follow_one_process(setup, tmp_path, fsdp, phase, runs):
    """2 gloo processes x batch 1 = 1 process x batch 2 (same effective batch and samples), with
    gradients accumulated over 2 micro-batches, replicated (DDP) or sharded (FSDP). Sharded, the run is
    also cut and resumed: each process then reloads only its shards of the model and optimizer (a
    replicated run reloads the whole state, as one process does: test_resumed_run_ends_with_the_same_weights)."""
    settings = ["accum_iter=2", "epochs=2", f"phase={phase}"]
    _, single = run(setup, tmp_path / "one", "--set", "batch_size=2", *settings)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(ROOT / "MU-LLaMA" / "train.py"), "--config", str(setup / "config.yaml"), "--output_dir",
               str(tmp_path / "two"), "--set", "batch_size=1", f"fsdp={fsdp}", *settings]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for extra in runs:
        done = subprocess.run([*command, *extra], capture_output=True, text=True, env=env)
        assert done.returncode == 0, f"{extra}: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    double = steps(tmp_path / "two" / "log.jsonl")
    assert len(single) == len(double) == 4
    for a, b in zip(single, double, strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-4 and a["lr"] == pytest.approx(b["lr"])
    one = load_file(tmp_path / "one" / "checkpoint.safetensors")
    two = load_file(tmp_path / "two" / "checkpoint.safetensors")
    # Finetune's LoRA down-projections get tiny gradients while their up-projections are still near 0,
    # and Adam turns tiny gradients into full steps: rounding differences between a batch of 2 and two
    # of 1 grow to ~1e-5 there (1 process x batch 1 x 4 micro-batches matches 2 processes exactly).
    atol = 1e-5 if phase == "pretrain" else 5e-5
    assert one.keys() == two.keys() and all(torch.allclose(one[k], two[k], atol=atol) for k in one)


def test_config_errors_are_clear(setup, tmp_path):
    with pytest.raises(SystemExit, match="unknown config keys \\['learning_rate'\\]"):
        train.main(["--config", str(setup / "config.yaml"), "--output_dir", str(tmp_path), "--set",
                    "learning_rate=1"])
    with pytest.raises(SystemExit, match="lr must be a number, not 'fast'"):
        train.main(["--config", str(setup / "config.yaml"), "--output_dir", str(tmp_path), "--set", "lr=fast"])
    config = train.TrainConfig.load(setup / "config.yaml", train.parse_overrides(["lr=1e-3", "min_lr=0"]))
    assert config.lr == 1e-3 and isinstance(config.lr, float)  # YAML alone would give the string "1e-3"
    with pytest.raises(SystemExit, match="precision must be"):
        train.main(["--config", str(setup / "config.yaml"), "--output_dir", str(tmp_path), "--set",
                    "precision=int8"])


def test_a_trained_checkpoint_starts_a_run_by_one_rule(setup, tmp_path, capsys):
    """pretrained_path with pretrained_keep "adapter" (MU-LLaMA's default: the original finetune's start from
    pretraining) takes the checkpoint's bridge, prefix and gates and says in one line what it left out; "all"
    takes every trained tensor, to continue the model the checkpoint holds."""
    from llama import read_mu_llama
    from llama.training.loop import build_run

    run(setup, tmp_path / "fine", "--set", "phase=finetune", "warmup_epochs=0", "max_steps=1")
    trained = read_mu_llama(tmp_path / "fine" / "checkpoint.safetensors")[0]
    lora = next(k for k in trained if ".lora_" in k and k.endswith("_l2.weight"))
    capsys.readouterr()
    for keep in ("adapter", "all"):
        config = train.TrainConfig.load(setup / "config.yaml", {
            "phase": "finetune", "pretrained_keep": keep, "output_dir": str(tmp_path / keep),
            "pretrained_path": str(tmp_path / "fine" / "checkpoint.safetensors")})
        started = build_run(config, "cpu")
        state = started.model.state_dict()
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert line.startswith(f"pretrained_path {tmp_path / 'fine' / 'checkpoint.safetensors'}: loaded ")
        assert torch.equal(state["music_bridge.proj.weight"], trained["music_bridge.proj.weight"])
        assert torch.equal(state[lora], trained[lora]) == (keep == "all") and trained[lora].abs().sum() > 0
        report = started.report["pretrained"]
        if keep == "adapter":
            assert set(report["loaded"]) == {"bridges", "prefix", "gates"}
            assert {"lora", "norms", "biases"} <= set(report["left_out"]) and "left out" in line
        else:
            assert not report["left_out"] and "left out" not in line


def test_musicqa_records_keyed_image_name_are_heard_and_unknown_media_keys_are_left_out(setup, tmp_path, capsys):
    """M2UGen's copies of MusicQA name the clip image_name: read as audio, never as text-only records; a record
    naming its clip under a key the reader does not know is counted, said and left out (the run's report,
    the first line of log.jsonl)."""
    qa = {"conversation": [{"from": "human", "value": "Describe the audio"}, {"from": "gpt", "value": "Calm."}]}
    (tmp_path / "m2ugen.json").write_text(json.dumps([{"image_name": "000001.wav", **qa},
                                                      {"audio_path": "000002.wav", **qa}]))
    data = f"data=[{{path: {tmp_path / 'm2ugen.json'}, audio_root: {setup / 'audios'}, kind: musicqa}}]"
    train.main(["--config", str(setup / "config.yaml"), "--output_dir", str(tmp_path / "out"), "--dry_run",
                "--set", data, "batch_size=1"])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["data"] == [{"path": str(tmp_path / "m2ugen.json"), "kind": "musicqa", "records": 2, "kept": 1,
                               "left_out": {"media under an unknown key 'audio_path'": 1}}]
    assert "1 of 2 records left out: 1 media under an unknown key 'audio_path'" in err
    records = load_records(tmp_path / "m2ugen.json", setup / "audios", "musicqa")[0]
    assert [r.audio for r in records] == [setup / "audios" / "000001.wav"]
    train.main(["--config", str(setup / "config.yaml"), "--output_dir", str(tmp_path / "run"), "--set", data,
                "batch_size=1", "max_steps=1"])
    assert json.loads((tmp_path / "run" / "log.jsonl").open().readline())["data"] == report["data"]
