"""ModelEvaluations/generate_mullama.py on a tiny release: every pair answered once, a killed run
resumes with nothing lost, unreadable clips reported, and the shuffled-audio control."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile

from llama.data.dataset import derangement
from llama.testing.releases import write_tiny_release

from conftest import ROOT

SCRIPT = ROOT / "ModelEvaluations" / "generate_mullama.py"
sys.path.insert(0, str(SCRIPT.parent))

import generate_mullama  # noqa: E402

QUESTIONS = ["Describe the audio", "What is the tempo?", "Which instruments play?"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, sentencepiece_model):
    root = tmp_path_factory.mktemp("generate")
    release = write_tiny_release(root, sentencepiece_model)
    (root / "audios").mkdir()
    t = np.arange(12000) / 24000
    clips = [np.random.default_rng(0).uniform(-0.5, 0.5, 9000), 0.5 * np.sin(2 * np.pi * 220 * t),
             0.5 * np.sin(2 * np.pi * 3000 * t[:8000]), (np.arange(12000) % 2400 == 0) * 0.9,
             0.5 * np.sign(np.sin(2 * np.pi * 50 * t[:10000]))]  # noise, tones, clicks, square: unlike clips
    rows = []
    for i, clip in enumerate(clips):
        soundfile.write(root / "audios" / f"{i:06d}.wav", clip, 24000)
        rows += [{"audio_name": f"{i:06d}.wav", "conversation": [{"from": "human", "value": q},
                                                                 {"from": "gpt", "value": "ref"}]} for q in QUESTIONS]
    rows.append(rows[0])  # a duplicate (audio, question) row: answered once
    (root / "audios" / "broken.wav").write_bytes(b"")
    rows.append({"audio_name": "broken.wav", "conversation": [{"from": "human", "value": QUESTIONS[0]},
                                                              {"from": "gpt", "value": "ref"}]})
    (root / "eval.json").write_text(json.dumps(rows))
    return root, release


def command(setup, output, *extra):
    root, release = setup
    return [sys.executable, str(SCRIPT), "--model", str(release["checkpoint"]), "--llama_dir",
            str(release["llama_dir"]), "--mert_path", str(release["mert_path"]), "--data", str(root / "eval.json"),
            "--audio_root", str(root / "audios"), "--output", str(output), "--max_gen_len", "8",
            "--dtype", "float32", *extra]  # answers are compared exactly: float32, whatever --dtype auto picks


def meta(output):
    return json.loads(output.with_name(output.stem + ".meta.json").read_text())


def test_every_pair_once_and_a_killed_run_resumes(setup, tmp_path):
    full = tmp_path / "full.json"
    generate_mullama.main(command(setup, full)[2:])  # in this process; the killed run below is a real one
    answers = json.loads(full.read_text())
    assert sorted(answers) == [f"{i:06d}.wav" for i in range(5)]
    assert all(sorted(v) == sorted(QUESTIONS) for v in answers.values())
    counts = meta(full)["counts"]
    assert counts["pairs"] == 16 and counts["answered"] == 15 and "broken.wav" in counts["unreadable_clips"]
    assert meta(full)["settings"]["temperature"] == 0.0 and "torch" in meta(full)["versions"]

    cut = tmp_path / "cut.json"
    process = subprocess.Popen(command(setup, cut, "--batch_size", "1"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    while not cut.exists() and process.poll() is None:
        time.sleep(0.02)
    process.kill()
    process.wait()
    done = sum(len(v) for v in json.loads(cut.read_text()).values())
    assert 1 <= done < 15, "the run was not cut short: make it slower"
    generate_mullama.main(command(setup, cut)[2:])
    assert json.loads(cut.read_text()) == answers  # greedy: the same answers, none lost or repeated
    assert meta(cut)["counts"]["answered_this_run"] == 15 - done


def test_shuffled_audio_answers_with_another_clip(setup, tmp_path):
    own, shuffled = tmp_path / "own.json", tmp_path / "shuffled.json"
    generate_mullama.main(command(setup, own, "--limit", "15")[2:])  # in this process: the script's main
    generate_mullama.main(command(setup, shuffled, "--limit", "15", "--shuffle_audio", "--shuffle_seed", "3")[2:])
    own, shuffled = json.loads(own.read_text()), json.loads(shuffled.read_text())
    names = sorted(own)
    heard = dict(zip(names, [names[j] for j in derangement(len(names), 3)], strict=True))
    assert all(heard[n] != n for n in names)
    for name in names:  # the answer about clip A is what the model says when it hears clip heard[A]
        assert shuffled[name] == own[heard[name]]
    assert shuffled != own


def test_silent_clip_answered_and_its_warning_kept_in_the_meta_file(setup, tmp_path, capsys):
    root, release = setup
    soundfile.write(tmp_path / "silence.wav", np.zeros(24000), 24000)
    rows = [{"audio_name": "silence.wav", "conversation": [{"from": "human", "value": QUESTIONS[0]},
                                                           {"from": "gpt", "value": "ref"}]}]
    (tmp_path / "eval.json").write_text(json.dumps(rows))
    output = tmp_path / "silent.json"
    args = command(setup, output)[2:]
    args[args.index("--data") + 1], args[args.index("--audio_root") + 1] = str(tmp_path / "eval.json"), str(tmp_path)
    generate_mullama.main(args)
    assert "warning: silence.wav: silent:" in capsys.readouterr().err
    assert list(json.loads(output.read_text())["silence.wav"]) == [QUESTIONS[0]]
    assert meta(output)["counts"]["warned_clips"]["silence.wav"][0].startswith("silent:")
