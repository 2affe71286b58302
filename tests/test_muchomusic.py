"""MuChoMusic: the benchmark's files, prompts and mapping rules, option log-probabilities against full
forwards, the bootstrap tables, and a smoke run of every condition and mode on the demo MU-LLaMA."""

import csv
import json
import sys

import numpy as np
import pytest
import soundfile
import torch

import llama
from llama.base_llm import load_base
from llama.data.synthetic_muchomusic import make_benchmark
from llama.evaluation.choice_tables import accuracy_tables, question_groups
from llama.evaluation.muchomusic import (
    IN_CONTEXT_EXAMPLE,
    answer_orders,
    audio_paths,
    paper_choice,
    prompt,
    read_questions,
    strict_choice,
)
from llama.likelihood import continuation_logprobs
from llama.prompt import format_prompt
from llama.testing.tiny import random_model, tiny_args

from conftest import ROOT, run_here

SHOWN = ["Four on the floor.", "Off-beat syncopation.", "Scat singing.", "Ska"]


@pytest.mark.parametrize(("output", "expected"), [
    ("(B) Off-beat syncopation.", 1),
    ("A piano plays over it", 0),  # the article is the one capital A-D: the benchmark reads it as "A"
    ("Bach would have liked it", 1),  # a capital inside a name counts too
    ("it is ska", 3),  # no capital A-D: the first option whose text the output contains
    ("A or B", -1),  # two letters and no option's text: unanswered
    ("The correct answer is: A. Also, The correct answer is: C", 2),  # the text after the last prefix
    ("four on the floor. ska too", 0),  # several options' texts: the first shown wins
])
def test_paper_mode_is_the_benchmarks_rule_with_its_quirks(output, expected):
    assert paper_choice(output, SHOWN) == expected


@pytest.mark.parametrize(("output", "expected"), [
    ("(B) Off-beat syncopation.", 1),
    ("B.", 1),
    ("C", 2),
    ("The answer is D", 3),
    ("The answer is: (C) Scat singing.", 2),
    ("My answer: B", 1),
    ("Option A, four on the floor", 0),
    ("A piano plays over it", -1),  # a leading article is no answer
    ("Bach would have liked it", -1),
    ("It is four on the floor.", 0),
    ("(A) or (B)", -1),
    ("four on the floor. ska too", -1),  # two options' texts: unanswered, not the first shown
    ("it is skating", -1),  # an option's text inside a longer word is not that option
])
def test_strict_mode_cannot_be_fooled_by_a_capital(output, expected):
    assert strict_choice(output, SHOWN) == expected


def test_strict_mode_prefers_the_longer_option_that_holds_a_shorter_one():
    assert strict_choice("It is slow and quiet.", ["Slow", "Slow and quiet", "Fast", "Fast and loud"]) == 1


def test_prompt_and_seeded_orders_are_the_benchmarks():
    expected = "Question: Which?\n Options: (A) a (B) b (C) c (D) d \n The correct answer is: "
    assert prompt("Which?", list("abcd"), []) == expected
    assert prompt("Which?", list("abcd"), [IN_CONTEXT_EXAMPLE]).startswith(IN_CONTEXT_EXAMPLE + "\n Question: Which?\n")
    orders = answer_orders(50, seed=3)
    assert orders == answer_orders(50, seed=3) != answer_orders(50, seed=4)
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    assert len({o.index(0) for o in orders}) == 4  # the correct answer is shown at every letter


def write_rows(path, columns, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([columns, *rows])


QUESTION_COLUMNS = ["question", "correct_answer", "distractor_1_answer", "distractor_2_answer", "distractor_3_answer",
                    "dataset", "dataset_identifier", "genre", "music_knowledge", "music_reasoning", "odd_question"]


def test_questions_and_audio_paths_as_the_benchmark_finds_them(tmp_path):
    write_rows(tmp_path / "muchomusic.csv", QUESTION_COLUMNS, [
        ["Q1", "a", "b", "c", "d", "musiccaps", "ab_cd-EF_gh_3.json", "Rock", "['melody']", "", "0.0"],
        ["Q2", "a", "b", "c", "d", "sdd", "415600.json", "", "", "['mood and expression', 'functional context']", ""],
        ["Q3", "a", "b", "c", "d", "musiccaps", "gone_away_1.json", "Pop", "", "", ""]])
    write_rows(tmp_path / "mc.csv", ["ytid", "start_s", "end_s", "caption"],
               [["ab_cd-EF_gh", "30", "40", "x"], ["ab_cd-EF_gh", "50", "60", "a second row: the first decides"]])
    write_rows(tmp_path / "sdd.csv", ["caption_id", "track_id", "path"], [["1", "415600", "00/415600.mp3"]])
    saved = tmp_path / "muchomusic.csv"
    saved.write_bytes(b"\xef\xbb\xbf" + saved.read_bytes())  # as a spreadsheet saves it: a byte-order mark first
    questions = read_questions(saved)
    assert [(q.row, q.dataset, q.audio_id) for q in questions] == [
        (0, "musiccaps", "ab_cd-EF_gh"), (1, "sdd", "415600"), (2, "musiccaps", "gone_away")]
    assert questions[0].knowledge == ("melody",) and questions[0].reasoning == ()
    assert questions[1].reasoning == ("mood and expression", "functional context") and questions[1].genre == ""
    paths = audio_paths(questions, tmp_path / "mc.csv", tmp_path / "mc", tmp_path / "sdd.csv", tmp_path / "sdd")
    assert paths[0] == tmp_path / "mc" / "[ab_cd-EF_gh]-[30-40].wav"
    assert paths[1] == tmp_path / "sdd" / "00" / "415600.2min.mp3"
    assert paths[2] == "gone_away is not in mc.csv"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda row: row.__setitem__(5, "youtube"), "neither sdd nor musiccaps"),
    (lambda row: row.__setitem__(8, "melody"), "music_knowledge is not a Python list"),
    (lambda row: row.__setitem__(6, "1_2.json"), "a Song Describer dataset_identifier is a track id"),
])
def test_malformed_questions_are_named(tmp_path, edit, message):
    row = ["Q1", "a", "b", "c", "d", "sdd", "1.json", "", "", "", ""]
    edit(row)
    write_rows(tmp_path / "q.csv", QUESTION_COLUMNS, [row])
    with pytest.raises(ValueError, match=message):
        read_questions(tmp_path / "q.csv")
    write_rows(tmp_path / "q.csv", QUESTION_COLUMNS[:5], [row[:5]])
    with pytest.raises(ValueError, match="no column dataset, dataset_identifier, genre"):
        read_questions(tmp_path / "q.csv")


def test_option_logprobs_equal_the_full_forward_of_each_option():
    """One prefill shared by each prompt's options (left-padded, with adapters) = each sequence run whole."""
    model = random_model(tiny_args(n_kv_heads=2, max_seq_len=64), seed=5)
    prompts = [[1, 5, 9, 4], [1, 7], [1, 3, 3, 8, 2, 6, 11]]
    options = [[[4], [5, 6, 7], [8, 9], [10, 11, 12, 13]], [[3, 3], [4], [90, 1], [2]], [[5], [6], [7], [8, 9]]]
    adapters = {model.args.n_layers - 1: torch.randn(3, model.args.dim)}
    got = continuation_logprobs(model, prompts, options, adapters)
    for i, (p, opts) in enumerate(zip(prompts, options, strict=True)):
        for j, o in enumerate(opts):
            tokens = torch.tensor([p + o])
            with torch.no_grad():
                logp = model(tokens, adapters={k: v[i:i + 1] for k, v in adapters.items()}).log_softmax(-1)[0]
            expected = sum(logp[len(p) - 1 + t, o[t]].item() for t in range(len(o)))
            assert got[i][j] == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ValueError, match="same number of continuations"):
        continuation_logprobs(model, prompts[:1], [[[4], []]])


class Q:
    def __init__(self, knowledge=(), reasoning=(), genre=""):
        self.knowledge, self.reasoning, self.genre = knowledge, reasoning, genre


def test_bootstrap_tables_are_paired_and_hold_the_point_estimate():
    questions = [Q(knowledge=("melody",), genre="Pop")] * 30 + [Q(reasoning=("mood",), genre="Jazz")] * 20
    rng = np.random.default_rng(0)
    model, control = rng.random(50) < 0.8, rng.random(50) < 0.3
    tables = accuracy_tables({"model": model, "control": control, "copy": model.copy()},
                             {c: np.zeros(50, bool) for c in ("model", "control", "copy")},
                             question_groups(questions), reference="model", resamples=500)
    row = tables["accuracy"]["model"]
    assert row["all"]["n"] == 50 and row["knowledge"]["n"] == 30 and row["reasoning"]["n"] == 20
    assert row["all"]["accuracy"] == pytest.approx(model.mean())
    assert row["reasoning: mood"]["accuracy"] == pytest.approx(model[30:].mean())
    for group in ("all", "knowledge", "genre: Jazz"):
        low, high = row[group]["ci"]
        assert low <= row[group]["accuracy"] <= high and low < high
    lead = tables["lead"]["control"]["all"]
    assert lead["difference"] == pytest.approx(model.mean() - control.mean())
    assert lead["ci"][0] <= lead["difference"] <= lead["ci"][1]
    assert tables["lead"]["copy"]["all"]["ci"] == [0.0, 0.0]  # the same answers: every paired draw differs by 0


SCRIPT_DIR = ROOT / "ModelEvaluations"
sys.path.insert(0, str(SCRIPT_DIR))

import muchomusic  # noqa: E402


def test_demo_smoke_every_condition_and_mode_resumes_and_lists_missing_audio(tmp_path, capsys):
    """The synthetic benchmark (6 tracks, 12 questions) on the demo MU-LLaMA in float32, with a MusicCaps clip
    vanished, a track whose header is no audio's (both left out before anything runs) and a track that fails
    only while decoding (left out of every condition then, with the questions that hear it when shuffled):
    every condition scores the same 4 questions and the tables say so; a second run loads no model and answers
    nothing again, and --score_only gives the same report."""
    data = tmp_path / "data"
    counts = make_benchmark(data, clips=6, per_clip=2, vanished=1, seed=1)
    assert counts == {"questions": 12, "clips": 6, "vanished": 1}
    header_broken, decode_broken = sorted((data / "sdd" / "audio").rglob("*.2min.mp3"))[:2]
    header_broken.write_bytes(b"ID3 this is not an mp3 any more")
    soundfile.write(tmp_path / "whole.flac", 0.1 * np.random.default_rng(0).standard_normal((48000, 2)), 48000)
    whole = (tmp_path / "whole.flac").read_bytes()
    decode_broken.write_bytes(whole[:len(whole) // 3])  # a FLAC header, then it stops mid-frame
    out = tmp_path / "out"
    argv = ["--data_root", data, "--output_dir", out, "--dtype", "float32", "--max_gen_len", 8, "--batch_size", 4,
            "--resamples", 200]
    status, stdout, stderr = run_here(muchomusic.main, argv, capsys)
    assert status == 0, stderr
    assert "12 questions, 4 without an audio file" in stderr and f"skipped {decode_broken}" in stderr
    report = json.loads((out / "report.json").read_text())
    assert report["questions"] == 12 and report["scored"] == 4 and report["missing"]["count"] == 8
    reasons = list(report["missing"]["rows"].values())
    assert sum(r.startswith("no file ") for r in reasons) == 2
    assert sum(f"{header_broken} is not readable audio" in r for r in reasons) == 2
    assert sum(f"cannot decode {decode_broken}" in r for r in reasons) == 4
    assert report["settings"]["prompt_template"] == "chatml" and report["settings"]["dtype"] == "float32"
    for mode in ("paper", "strict", "likelihood", "likelihood_per_token"):
        table = report["modes"][mode]["accuracy"]
        assert set(table) == {"model", "silence", "noise", "shuffled", "text_only"}
        assert all(t["all"]["n"] == 4 for t in table.values())
        assert set(report["modes"][mode]["lead"]) == {"silence", "noise", "shuffled", "text_only"}
    records = json.loads((out / "model.json").read_text())
    assert {"id", "prompt", "answers", "answer_orders", "dataset", "genre", "reasoning", "knowledge", "audio_path",
            "model_output", "option_logprobs", "option_tokens"} <= set(records[0])
    shuffled = json.loads((out / "shuffled.json").read_text())
    assert all(s["heard"] != s["audio_path"] for s in shuffled)
    assert "| model − text-only base LLM |" in stdout and "(n=4)" in stdout

    before = {p.name: p.read_text() for p in out.glob("*.json")}
    status, _, stderr = run_here(muchomusic.main, argv, capsys)
    assert status == 0 and "model: every question answered" in stderr and "skipped" not in stderr
    assert {p.name: p.read_text() for p in out.glob("*.json")} == before
    status, stdout_again, _ = run_here(muchomusic.main, [*argv, "--score_only"], capsys)
    assert status == 0 and json.loads((out / "report.json").read_text())["modes"] == report["modes"]
    status, stdout, err = run_here(muchomusic.main, [*argv, "--score_only", "--conditions", "silence,noise"], capsys)
    assert status == 0 and "| silence |" in stdout and "−" not in stdout and "no 'model' condition" in err


def test_command_line_errors_are_one_line(tmp_path, capsys):
    status, _, err = run_here(muchomusic.main, ["--data_root", tmp_path, "--conditions", "model,radio"], capsys)
    assert status == 2 and "--conditions: radio not among model, silence" in err and len(err.splitlines()) == 1
    status, _, err = run_here(muchomusic.main, ["--data_root", tmp_path / "nowhere"], capsys)
    assert status == 2 and "muchomusic.csv" in err and len(err.splitlines()) == 1
    data = tmp_path / "data"
    make_benchmark(data, clips=2, per_clip=1, seed=2)
    table = data / "musiccaps" / "musiccaps-public.csv"
    table.write_text(table.read_text().replace("start_s", "begin", 1))  # a table that is not MusicCaps'
    status, _, err = run_here(muchomusic.main, ["--data_root", data], capsys)
    assert status == 2 and "no column start_s" in err and len(err.splitlines()) == 1
    table.write_text(table.read_text().replace("begin", "start_s", 1))
    questions = data / "muchomusic.csv"
    rows = list(csv.DictReader(questions.open(newline="")))
    rows[0]["question"] = "Which instrument plays? " * 4000  # longer than the demo's context
    with questions.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    status, _, err = run_here(muchomusic.main, ["--data_root", data, "--output_dir", tmp_path / "out", "--limit", "1",
                                                "--dtype", "float32", "--modes", "likelihood"], capsys)
    assert status == 2 and "error: model: a prompt of" in err, err
    questions.write_text("question,dataset\nWhat plays?,sdd\n")
    status, _, err = run_here(muchomusic.main, ["--data_root", data], capsys)
    assert status == 2 and "no column dataset_identifier" in err and len(err.splitlines()) == 1


def test_mumu_llama_is_evaluated_too_and_a_resumed_run_keeps_its_flags(tmp_path, capsys):
    make_benchmark(tmp_path / "data", clips=2, per_clip=1, seed=2)
    argv = ["--data_root", tmp_path / "data", "--output_dir", tmp_path / "out", "--dtype", "float32",
            "--model", ROOT / "demo" / "mumu" / "checkpoint.safetensors", "--mert_path", ROOT / "demo" / "MERT",
            "--llama_dir", ROOT / "ckpts" / "SmolLM2-135M-Instruct", "--conditions", "model", "--modes", "likelihood",
            "--resamples", 50]
    status, _, err = run_here(muchomusic.main, argv, capsys)
    assert status == 0, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["scored"] == 2 and set(report["modes"]) == {"likelihood"}
    assert report["settings"]["flags"]["model"].endswith("mumu/checkpoint.safetensors")
    status, _, err = run_here(muchomusic.main, [*argv, "--order_seed", 1], capsys)
    assert status == 2 and "made with --order_seed 0" in err and len(err.splitlines()) == 2  # the progress line


def test_demo_leads_its_shuffled_control_at_smoke_size(tmp_path, capsys):
    """Likelihood mode on 24 synthetic questions (float32, zero-shot: half the prompt): the paired bootstrap
    interval of the demo's lead over its shuffled-audio control lies above 0 (README: the full-size run, one
    worked example first as the benchmark's default, and every control)."""
    make_benchmark(tmp_path / "data", clips=12, per_clip=2, seed=3)
    argv = ["--data_root", tmp_path / "data", "--output_dir", tmp_path / "out", "--dtype", "float32",
            "--conditions", "model,shuffled", "--modes", "likelihood", "--resamples", 1000, "--in_context", "none"]
    status, _, err = run_here(muchomusic.main, argv, capsys)
    assert status == 0, err
    tables = json.loads((tmp_path / "out" / "report.json").read_text())["modes"]["likelihood"]
    assert tables["accuracy"]["model"]["all"]["n"] == 24
    assert tables["lead"]["shuffled"]["all"]["ci"][0] > 0, tables["lead"]["shuffled"]["all"]


def test_text_only_control_is_the_bare_base_llm(smollm2_dir):
    """load_base's pipeline scores options with the backbone alone: the same log-probabilities as the model
    load_llama gives, run whole on prompt + option."""
    base = load_base(smollm2_dir, "chatml", dtype=torch.float32)
    bare = llama.load_llama(smollm2_dir, dtype=torch.float32)
    question, options = "Which instrument plays?", ["The flute is playing.", "Piano"]
    got = base.option_logprobs(None, [question], [options])[0]
    ids = base.tokenizer.encode(format_prompt(question, "chatml"), bos=True)
    for (total, count), option in zip(got, options, strict=True):
        tail = base.tokenizer.encode(option, bos=False)
        with torch.no_grad():
            logp = bare(torch.tensor([ids + tail])).log_softmax(-1)[0]
        assert count == len(tail)
        assert total == pytest.approx(sum(logp[len(ids) - 1 + t, tail[t]].item() for t in range(len(tail))), abs=1e-3)
    assert base.model.modalities == () and base.answer(None, [question], max_new_tokens=4)[0]
