"""MU-LLaMA/batch_inference.py on a tiny release and real audio files: every pair answered once,
unreadable files as error records, resume after a kill, torchrun shards + --merge, batching parity,
MusicQA JSON and path-list inputs, clear errors for bad inputs."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from llama.cli import run_main
from llama.testing.releases import write_tiny_release

from conftest import ROOT

sys.path.insert(0, str(ROOT / "MU-LLaMA"))

import batch_inference  # noqa: E402

SCRIPT = ROOT / "MU-LLaMA" / "batch_inference.py"
QUESTIONS = ["Describe the audio", "What is the tempo?"]
RATE = 24000
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def write_clips(folder):
    """8 real clips of several lengths and formats (two of equal length, one in a subfolder) and
    2 unreadable files: an empty .wav and a text file named .wav."""
    t = np.arange(2 * RATE) / RATE
    clips = {"noise.wav": np.random.default_rng(0).uniform(-0.5, 0.5, 9000),
             "a220.wav": 0.5 * np.sin(2 * np.pi * 220 * t[:12000]),
             "a440.wav": 0.5 * np.sin(2 * np.pi * 440 * t[:12000]),
             "high.flac": 0.5 * np.sin(2 * np.pi * 3000 * t[:30000]),
             "clicks.wav": (np.arange(20000) % 2400 == 0) * 0.9,
             "square.ogg": 0.5 * np.sign(np.sin(2 * np.pi * 50 * t[:16000])),
             "sub/chirp.wav": 0.5 * np.sin(2 * np.pi * (100 + 400 * t) * t),
             "sub/quiet.wav": 0.01 * np.random.default_rng(1).standard_normal(5000)}
    for name, samples in clips.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(folder / name, samples, RATE)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "sub" / "notes.wav").write_text("not audio, just text with a .wav name\n")
    (folder / "readme.txt").write_text("not an audio extension: not an input")
    return [str(folder / name) for name in clips], [str(folder / "empty.wav"), str(folder / "sub" / "notes.wav")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, sentencepiece_model):
    root = tmp_path_factory.mktemp("batch")
    release = write_tiny_release(root, sentencepiece_model)
    good, bad = write_clips(root / "clips")
    model = ["--model", str(release["checkpoint"]), "--llama_dir", str(release["llama_dir"]),
             "--mert_path", str(release["mert_path"]), "--max_gen_len", "8",
             "--dtype", "float32"]  # records are compared exactly: float32, whatever --dtype auto picks here
    reference = root / "reference.jsonl"
    batch_inference.main(["--input", str(root / "clips"), "--question", *QUESTIONS, "--output", str(reference),
                          "--batch_size", "1", *model])
    return {"root": root, "good": good, "bad": bad, "model": model, "reference": reference}


def folder_args(setup, output, *extra):
    return ["--input", str(setup["root"] / "clips"), "--question", QUESTIONS[0], "--question", QUESTIONS[1],
            "--output", str(output), *setup["model"], *extra]


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_pair(path):
    """{(audio, question): answer or error}, checking that no pair appears twice."""
    lines = records(path)
    result = {(r["audio"], r["question"]): r.get("answer", r.get("error")) for r in lines}
    assert len(result) == len(lines), "a pair is written twice"
    return result


def test_every_pair_answered_once_and_unreadable_files_become_error_records(setup):
    lines = records(setup["reference"])
    answers = [r for r in lines if "answer" in r]
    errors = [r for r in lines if "error" in r]
    assert sorted((r["audio"], r["question"]) for r in answers) == sorted((a, q) for a in setup["good"]
                                                                          for q in QUESTIONS)
    assert sorted((r["audio"], r["question"]) for r in errors) == sorted((a, q) for a in setup["bad"]
                                                                         for q in QUESTIONS)
    assert all(r["answer"] and r["seconds"] > 0 for r in answers)
    assert any("empty file" in r["error"] for r in errors) and any("cannot decode" in r["error"] for r in errors)
    settings = answers[0]["settings"]
    assert settings["temperature"] == 0.0 and settings["max_gen_len"] == 8 and settings["audio_mode"] == "full"
    assert settings["model"].endswith("checkpoint.pth") and settings["seed"] == 0 and settings["dtype"] == "float32"
    assert len({r["answer"] for r in answers}) > 1  # answers depend on the clip and question


@pytest.mark.parametrize("flags", [("--batch_size", "8"), ("--batch_size", "3"),
                                   ("--batch_size", "3", "--queue_size", "3")],
                         ids=["continuous-8", "continuous-3", "static-3"])
def test_batching_gives_the_same_answers(setup, tmp_path, flags):
    batch_inference.main(folder_args(setup, tmp_path / "batched.jsonl", *flags))
    assert by_pair(tmp_path / "batched.jsonl") == by_pair(setup["reference"])


def test_a_killed_run_resumes_without_losing_or_repeating_a_pair(setup, tmp_path):
    output = tmp_path / "killed.jsonl"
    process = subprocess.Popen([sys.executable, str(SCRIPT), *folder_args(setup, output, "--batch_size", "1")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    # 4 error records come first (unreadable files sort as 0 s long), then answers.
    while process.poll() is None and (not output.exists() or output.read_bytes().count(b"\n") < 6):
        time.sleep(0.001)
    process.kill()
    process.wait()
    written = output.read_bytes().count(b"\n")
    assert 6 <= written < 20, "the run was not cut short: make it slower"
    batch_inference.main(folder_args(setup, output, "--batch_size", "1"))
    assert by_pair(output) == by_pair(setup["reference"])  # greedy: same answers, nothing lost or repeated


def test_a_half_written_last_line_is_dropped_on_resume(setup, tmp_path, capsys):
    lines = setup["reference"].read_text().splitlines(keepends=True)
    output = tmp_path / "torn.jsonl"
    output.write_text("".join(lines[:7]) + lines[7][: len(lines[7]) // 2])
    batch_inference.main(folder_args(setup, output, "--batch_size", "4"))
    assert "incomplete last line" in capsys.readouterr().err
    assert by_pair(output) == by_pair(setup["reference"])


def test_error_records_count_as_done_unless_retried(setup, tmp_path):
    clips = tmp_path / "clips"
    good, bad = write_clips(clips)
    output = tmp_path / "out.jsonl"
    subset = [f"{bad[0]}\n", f"{good[0]}\n"]
    (tmp_path / "list.txt").write_text("".join(subset))
    args = ["--input", str(tmp_path / "list.txt"), "--output", str(output), *setup["model"]]
    batch_inference.main(args)
    soundfile.write(bad[0], np.sin(np.arange(6000) / 7), RATE)  # the empty file is fixed
    batch_inference.main(args)  # nothing to do: the error record counts as done
    assert "error" in by_pair(output)[(bad[0], "Describe the Audio")]
    batch_inference.main([*args, "--retry_errors"])
    assert len(by_pair(output)) == 2 and all("answer" in r for r in records(output))


def test_two_torchrun_processes_and_merge_equal_one_process(setup, tmp_path):
    output = tmp_path / "sharded.jsonl"
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(SCRIPT), *folder_args(setup, output, "--batch_size", "3")],
                   check=True, capture_output=True, env=ENV)
    parts = sorted(p.name for p in tmp_path.glob("sharded.jsonl.rank*"))
    assert parts == ["sharded.jsonl.rank0-of-2.jsonl", "sharded.jsonl.rank1-of-2.jsonl"] and not output.exists()
    shards = [{r["audio"] for r in records(tmp_path / p)} for p in parts]
    assert shards[0] and shards[1] and not shards[0] & shards[1]  # each clip on exactly one rank
    batch_inference.main(["--output", str(output), "--merge"])
    assert by_pair(output) == by_pair(setup["reference"])
    keys = [(r["audio"], r["question"]) for r in records(output)]
    assert keys == sorted(keys) and not list(tmp_path.glob("sharded.jsonl.rank*"))


def test_musicqa_json_brings_its_questions_and_path_lists_resolve_relative_paths(setup, tmp_path):
    audio = setup["root"] / "clips"
    rows = [{"audio_name": "a220.wav", "conversation": [{"from": "human", "value": q}, {"from": "gpt", "value": "x"}]}
            for q in ("Describe the audio", "Is it loud?")]
    rows += [rows[0], {"conversation": [{"from": "human", "value": "text only"}, {"from": "gpt", "value": "x"}]}]
    (tmp_path / "qa.json").write_text(json.dumps(rows))
    batch_inference.main(["--input", str(tmp_path / "qa.json"), "--audio_root", str(audio),
                          "--output", str(tmp_path / "qa.jsonl"), *setup["model"]])
    reference = by_pair(setup["reference"])
    got = by_pair(tmp_path / "qa.jsonl")
    assert sorted(got) == [(str(audio / "a220.wav"), "Describe the audio"), (str(audio / "a220.wav"), "Is it loud?")]
    assert got[(str(audio / "a220.wav"), "Describe the audio")] == reference[(str(audio / "a220.wav"),
                                                                               "Describe the audio")]

    (audio / "list.txt").write_text("noise.wav\n\nsub/chirp.wav\n")
    batch_inference.main(["--input", str(audio / "list.txt"), "--question", QUESTIONS[1],
                          "--output", str(tmp_path / "list.jsonl"), *setup["model"]])
    assert by_pair(tmp_path / "list.jsonl") == {(str(audio / n), QUESTIONS[1]): reference[(str(audio / n),
                                                                                            QUESTIONS[1])]
                                                for n in ("noise.wav", "sub/chirp.wav")}


def test_bad_inputs_get_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.json").write_text('[{"audio_name": "a.wav", ')
    out = ["--output", str(tmp_path / "out.jsonl")]
    for path, message in ((tmp_path / "missing", "does not exist"), (tmp_path / "empty", "no audio files"),
                          (tmp_path / "bad.json", "not valid JSON")):
        with pytest.raises(SystemExit, match=message) as error:
            batch_inference.main(["--input", str(path), *out])
        assert str(path) in str(error.value)
    with pytest.raises(SystemExit, match="nothing to merge"):
        batch_inference.main([*out, "--merge"])


def test_file_names_that_are_not_utf8_are_answered_resumed_and_merged(setup, tmp_path):
    """caf\\xe9.wav (Latin-1 bytes, as old archives and Samba shares hold them) and a dangling link."""
    folder = tmp_path / "latin1"
    folder.mkdir()
    name = os.fsdecode(os.path.join(os.fsencode(folder), b"caf\xe9.wav"))
    with open(name, "wb") as f:
        soundfile.write(f, np.random.default_rng(2).uniform(-0.5, 0.5, 12000), RATE, format="WAV")
    soundfile.write(folder / "plain.wav", np.random.default_rng(3).uniform(-0.5, 0.5, 9000), RATE)
    (folder / "gone.wav").symlink_to(folder / "deleted.wav")
    out = tmp_path / "out.jsonl"
    args = ["--input", str(folder), "--question", QUESTIONS[0], "--output", str(out), *setup["model"]]
    batch_inference.main(args)
    first = {r["audio"]: r for r in records(out)}
    assert set(first) == {name, str(folder / "plain.wav"), str(folder / "gone.wav")}
    assert "answer" in first[name] and os.fsencode(first[name]["audio"]).endswith(b"caf\xe9.wav")
    assert "deleted.wav, which does not exist" in first[str(folder / "gone.wav")]["error"]
    out.read_bytes().decode("utf-8")  # the output stays valid UTF-8
    batch_inference.main(args)  # resume: nothing left to answer
    assert records(out) == list(first.values())
    # merge: the record of the non-UTF-8 name comes back unchanged
    os.replace(out, batch_inference.part_path(out, 0, 2))
    batch_inference.main(["--output", str(out), "--merge"])
    assert {r["audio"]: r for r in records(out)} == first


def test_silent_short_and_truncated_clips_are_answered_with_warnings(setup, tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    music = 0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * RATE) / RATE)
    soundfile.write(folder / "silence.wav", np.zeros(10 * RATE), RATE)
    soundfile.write(folder / "hiss.wav", 1e-5 * np.random.default_rng(0).standard_normal(3 * RATE), RATE)
    soundfile.write(folder / "late.wav", np.concatenate([np.zeros(61 * RATE), music]), RATE)
    soundfile.write(folder / "blip.wav", music[:100], RATE)
    soundfile.write(folder / "music.wav", music, RATE)
    data = (folder / "music.wav").read_bytes()
    (folder / "cut.wav").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.jsonl"
    batch_inference.main(["--input", str(folder), "--question", QUESTIONS[0], "--output", str(out), *setup["model"]])
    warned = {Path(r["audio"]).name: " ".join(r.get("warnings", [])) for r in records(out)}
    assert all("answer" in r for r in records(out))  # the model is still asked
    assert "silent: the clip is at -inf dBFS" in warned["silence.wav"]
    assert "silent: the clip is at -9" in warned["hiss.wav"] and "below -60" in warned["hiss.wav"]
    assert warned["late.wav"] == "" and warned["music.wav"] == ""  # whole clips are encoded by default
    assert "shorter than one encoder frame" in warned["blip.wav"]
    assert "truncated: its header announces 96000 bytes of samples" in warned["cut.wav"]
    out.unlink()
    batch_inference.main(["--input", str(folder / "late.wav"), "--question", QUESTIONS[0], "--output", str(out),
                          "--audio_mode", "upstream", *setup["model"]])
    assert "silent: its first 60 s (what --audio_mode upstream encodes)" in records(out)[0]["warnings"][0]


def test_a_second_run_on_a_locked_output_stops_and_a_stale_lock_does_not(setup, tmp_path):
    import fcntl

    out = tmp_path / "out.jsonl"
    args = folder_args(setup, out)
    with open(tmp_path / "out.jsonl.lock", "a+") as held:  # a run still writing (this process holds the lock)
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("pid 12345 on elsewhere")
        held.flush()
        with pytest.raises(SystemExit, match=r"out.jsonl is being written by another run \(pid 12345 on elsewhere\)"):
            batch_inference.main(args)
        with pytest.raises(SystemExit, match="being written by another run"):
            batch_inference.main(["--output", str(out), "--merge"])
    assert not out.exists()
    # the lock file left by that run (its process gone, the lock released) blocks nothing
    batch_inference.main(args)
    assert by_pair(out) == by_pair(setup["reference"])


@pytest.mark.parametrize("bf16_units", ["0", "1"], ids=["cpu-without-bf16", "cpu-with-bf16"])
def test_dtype_auto_either_way_writes_every_pair_once_and_resumes(setup, tmp_path, monkeypatch, capsys, bf16_units):
    """--dtype auto as a CPU with and without bf16 units chooses (MU_LLAMA_CPU_BF16 overrides what this CPU
    reports). bf16 promises complete, unique, resumable records, not float32's answers: a batched bf16 answer
    may differ from the same pair's alone (docs/performance.md, Throughput), so only float32's are compared exactly."""
    monkeypatch.setenv("MU_LLAMA_CPU_BF16", bf16_units)
    output = tmp_path / "auto.jsonl"
    batch_inference.main(folder_args(setup, output, "--batch_size", "3", "--dtype", "auto"))
    lines = records(output)
    assert {r["settings"]["dtype"] for r in lines if "answer" in r} == {"bfloat16" if bf16_units == "1" else "float32"}
    assert by_pair(output).keys() == by_pair(setup["reference"]).keys()  # every pair, once
    if bf16_units == "0":
        assert by_pair(output) == by_pair(setup["reference"])
    kept = output.read_text().splitlines(keepends=True)[:9]  # a run killed after 9 records
    output.write_text("".join(kept))
    batch_inference.main(folder_args(setup, output, "--batch_size", "3", "--dtype", "auto"))
    assert output.read_text().splitlines(keepends=True)[:9] == kept  # what was written stays
    assert by_pair(output).keys() == by_pair(setup["reference"]).keys()
    monkeypatch.setenv("MU_LLAMA_CPU_BF16", "yes")
    with pytest.raises(SystemExit) as error:
        run_main(batch_inference.main, folder_args(setup, tmp_path / "bad.jsonl", "--dtype", "auto"))
    assert error.value.code == 2 and not (tmp_path / "bad.jsonl").exists()
    assert capsys.readouterr().err.splitlines()[-1].endswith("error: MU_LLAMA_CPU_BF16 must be 0 or 1, not 'yes'")
