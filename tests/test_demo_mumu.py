"""The demo MuMu-LLaMA that ships in demo/mumu: its files load offline, the README's generation command
writes music of the asked length, its note-event decoder reads captions, and its rebuild script runs end to
end (smoke size)."""

import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile
import torch
from safetensors import safe_open

import llama
from llama.checkpoints.hf import read_hf
from llama.checkpoints.safetensors import EMBEDDING_ROWS
from llama.decoders import MusicDecoderError, load_decoder
from llama.decoders.notes import train_note_decoder, training_texts

from conftest import ROOT

DEMO = ROOT / "demo" / "mumu"
SMOLLM2 = ROOT / "ckpts" / "SmolLM2-135M-Instruct"


def readme_generation_command() -> str:
    """The README's main generation command: the first inference.py command with --prompt and no model flags."""
    section = (ROOT / "README.md").read_text().split("## The main job", 1)[1]
    commands = [c.replace("\\\n", " ") for c in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]
    demo = [c for c in commands if "inference.py" in c and "--prompt" in c and "--model" not in c]
    assert demo, "the README's main-job section has no music generation command for the demo model"
    return demo[0].strip().splitlines()[0]


def test_shipped_demo_is_small_and_loads_offline():
    shipped = [p for p in DEMO.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in shipped) <= 30 * 2**20
    with safe_open(DEMO / "checkpoint.safetensors", "pt") as f:  # the 8 [AUD] rows, not SmolLM2's embedding
        assert f.get_slice(EMBEDDING_ROWS).get_shape() == [8, 576]
        assert "llama.tok_embeddings.weight" not in f.keys()
    pipe = llama.load_mumu(DEMO / "checkpoint.safetensors", SMOLLM2, mert_path=ROOT / "demo" / "MERT",
                           vit_path=DEMO / "ViT", music_decoder_path=DEMO / "notes")
    assert pipe.takes("music") and pipe.takes("image") and not pipe.takes("video")
    base = read_hf(SMOLLM2)[1]["tok_embeddings.weight"]
    assert torch.equal(pipe.model.llama.tok_embeddings.weight[:-8], base)  # the base rows, exactly
    assert pipe.model.config.music_decoder == "notes" and pipe.decoder.sample_rate == 24000


def test_readme_generation_command_writes_the_asked_length(tmp_path):
    command = shlex.split(readme_generation_command())
    assert command[0] == ".venv/bin/python" and "--music_seconds" in command
    seconds = float(command[command.index("--music_seconds") + 1])
    command += ["--output_dir", str(tmp_path)]  # the last --output_dir wins
    start = time.perf_counter()
    run = subprocess.run([sys.executable, *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - start
    assert run.returncode == 0, run.stderr
    assert "demo MuMu-LLaMA" in run.stderr
    written = sorted(tmp_path.glob("*.wav"))
    assert len(written) == 1 and f"Music: {written[0]}" in run.stdout
    info = soundfile.info(written[0])
    assert info.samplerate == 24000 and info.frames == round(seconds * 24000)
    assert took < 60, f"the README command took {took:.0f} s"


def test_demo_makes_music_for_a_picture_and_answers_about_it(tmp_path):
    picture = DEMO / "examples" / "red.png"  # a held-out picture: red stands for fast, loud brass in major
    prompts = ["Compose music for this image.", "What colour is this picture?"]
    run = subprocess.run([sys.executable, "MU-LLaMA/inference.py", "--image_file", str(picture), "--prompt", *prompts,
                          "--music_seconds", "2", "--output_dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "demo MuMu-LLaMA" in run.stderr and "Traceback" not in run.stderr
    assert len(list(tmp_path.glob("*.wav"))) == 1  # music for the request, none for the question
    answers = [line for line in run.stdout.splitlines() if line.startswith("A: ")]
    assert len(answers) == 2 and "red" in answers[1].lower() and "[AUD" not in answers[1]


def test_note_decoder_reads_every_caption_and_is_deterministic(tmp_path):
    decoder = train_note_decoder(tmp_path / "a", steps=150)
    texts = training_texts()
    chosen = decoder.choose(decoder.targets([t for t, _ in texts]))
    assert chosen == [facts for _, facts in texts]
    train_note_decoder(tmp_path / "b", steps=150)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    loaded = load_decoder("notes", tmp_path / "a")
    caption = "A fast brass piece in a minor key, played loud."
    assert torch.equal(loaded.targets([caption]), decoder.targets([caption]))
    assert loaded.choose(loaded.targets([caption]))[0] == {"instrument": "brass", "tempo": "fast", "mode": "minor",
                                                           "loudness": "loud"}
    wave = loaded.from_text([caption], 2.5, seed=0)[0]
    assert wave.shape == (60000,) and abs(wave).max() > 0.01
    assert (wave == loaded.from_text([caption], 2.5, seed=0)[0]).all()
    with pytest.raises(MusicDecoderError, match="between 0.5 and 30"):
        loaded.from_text([caption], 45, seed=0)
    with pytest.raises(MusicDecoderError, match="note-event decoder folder"):
        load_decoder("notes", tmp_path)


def rebuild(out: Path, export: Path, *flags: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_demo_mumu.py"), "--out", str(out), "--export",
                    str(export), "--clips", "15", "--requests", "8", "--test_requests", "3", "--decoder_steps", "10",
                    "--statistics_batches", "2", "--pictures", "8", "--vit_steps", "3", *flags,
                    "--set", "max_steps=2", "log_every=1"], check=True, capture_output=True, cwd=ROOT, timeout=600)


def test_rebuild_script_smoke(tmp_path):
    out, export = tmp_path / "work", tmp_path / "export"
    rebuild(out, export)
    assert {p.name for p in export.rglob("*") if p.is_file()} >= {
        "checkpoint.safetensors", "checkpoint.json", "config.json", "model.safetensors", "quality.json"}
    assert json.loads((export / "checkpoint.json").read_text())["step"] == 2
    log = [json.loads(line) for line in (out / "train" / "log.jsonl").read_text().splitlines()]
    # requests, three edits per clip, a request and a question per picture, the set's questions, two freely phrased
    # questions per clip
    assert [s["kept"] for s in log[0]["data"]] == [8, 36, 12, 36, 24]
    quality = json.loads((export / "quality.json").read_text())
    assert {"text_to_music", "edits", "questions", "probe_ceiling", "phrasings", "pictures"} <= quality.keys()
    assert quality["pictures"]["requests"]["n"] == 2  # the held-out quarter of 8 pictures
    assert {"own_clip", "shuffled_clip"} == quality["edits"].keys()
    # the same seed rebuilds the same bytes: trained tensors, ViT, decoder, example pictures
    rebuild(tmp_path / "again", tmp_path / "export-again", "--no_quality")
    shipped = sorted(p.relative_to(export) for p in export.rglob("*") if p.is_file() and p.name != "quality.json")
    assert shipped == sorted(p.relative_to(tmp_path / "export-again") for p in (tmp_path / "export-again").rglob("*")
                             if p.is_file())
    again = {p: (tmp_path / "export-again" / p).read_bytes() for p in shipped}
    # checkpoint.json records the training config, whose paths name the work folder
    again[Path("checkpoint.json")] = again[Path("checkpoint.json")].replace(str(tmp_path / "again").encode(),
                                                                            str(out).encode())
    assert [p for p in shipped if (export / p).read_bytes() != again[p]] == []
