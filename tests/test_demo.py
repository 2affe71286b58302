"""The demo model that ships in demo/: it loads offline through the public path, the README's main
command answers with it on a fresh install, and its rebuild script runs end to end (smoke size)."""

import json
import os
import re
import shlex
import subprocess
import sys
import time

import torch

import llama

from conftest import ROOT

DEMO = ROOT / "demo"


def readme_main_command() -> str:
    """The first inference.py command of the README's main-job section without model flags: the demo's."""
    section = (ROOT / "README.md").read_text().split("## The main job", 1)[1]
    commands = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    demo = [c.replace("\\\n", " ") for c in commands if "inference.py" in c and "--model" not in c]
    assert demo, "the README's main-job section has no inference.py command without model flags"
    return demo[0].strip()


def test_shipped_demo_is_small_and_loads_offline():
    shipped = [p for p in DEMO.rglob("*") if p.is_file() and "mumu" not in p.relative_to(DEMO).parts]
    assert sum(p.stat().st_size for p in shipped) <= 30 * 2**20  # demo/mumu has its own budget (test_demo_mumu)
    model = llama.load(DEMO / "checkpoint.safetensors", ROOT / "ckpts" / "SmolLM2-135M-Instruct", DEMO / "MERT")
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert model.template == "chatml" and model.model.llama.args.n_layers == 30
    clip = llama.load_audio(next((DEMO / "examples").glob("*.wav")))
    answer = model.answer([clip], ["What instrument is playing?"], max_new_tokens=24)[0]
    assert re.fullmatch(r"[A-Z][a-z ,']+\.", answer), answer  # one plain English sentence
    # Shuffling which clip is heard must change what the bridge hands the backbone.
    features = model.encode("music", [llama.load_audio(p) for p in sorted((DEMO / "examples").glob("*.wav"))])
    assert not torch.allclose(features[0], features[1], atol=1e-3)


def test_readme_main_command_answers_within_a_minute():
    command = shlex.split(readme_main_command())
    assert command[0] == ".venv/bin/python"
    start = time.perf_counter()
    run = subprocess.run([sys.executable, *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - start
    assert run.returncode == 0, run.stderr
    answer = run.stdout.split("\nA: ", 1)[1].strip()
    assert answer and "demo model" in run.stderr
    assert seconds < 60, f"the README command took {seconds:.0f} s"


def test_rebuild_script_smoke(tmp_path):
    out, export = tmp_path / "work", tmp_path / "export"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_demo.py"), "--out", str(out), "--export",
                    str(export), "--clips", "24", "--test_clips", "4", "--audio_steps", "2",
                    "--set", "max_steps=2", "log_every=1"], check=True, capture_output=True, cwd=ROOT, timeout=600)
    assert {p.name for p in export.rglob("*") if p.is_file()} >= {
        "checkpoint.safetensors", "config.json", "pytorch_model.bin", "preprocessor_config.json", "quality.json"}
    assert json.loads((out / "pretrain" / "checkpoint.json").read_text())["step"] == 2
    assert (export / "checkpoint.json").read_text() == (out / "pretrain" / "checkpoint.json").read_text()
    quality = json.loads((export / "quality.json").read_text())
    assert {"instrument", "tempo", "mode"} <= quality["own_audio"].keys()
    assert quality["sax_wav"]["answer"]
    llama.load(export / "checkpoint.safetensors", ROOT / "ckpts" / "SmolLM2-135M-Instruct", export / "MERT")
    # the same seed builds the same model, bit for bit (the quality table, measured above, is not built again)
    again = tmp_path / "again"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_demo.py"), "--out", str(tmp_path / "work2"),
                    "--export", str(again), "--clips", "24", "--test_clips", "4", "--audio_steps", "2",
                    "--set", "max_steps=2", "log_every=1", "--no_quality"], check=True, capture_output=True, cwd=ROOT,
                   timeout=600)
    assert not (again / "quality.json").exists()
    for name in ("checkpoint.safetensors", "MERT/pytorch_model.bin"):
        assert (again / name).read_bytes() == (export / name).read_bytes(), name
