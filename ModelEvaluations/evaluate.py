"""Score models' answers to an evaluation set in the upstream paper's convention and the standard one.

    python ModelEvaluations/evaluate.py --references MusicQA/MusicQA/EvalMusicQA.json \\
        --predictions mu-llama=results/mullama_data.json shuffled=results/mullama_shuffled.json \\
        --bertscore_model ckpts/roberta-large --output results/metrics

References: the EvalMusicQA JSON list (or JSONL). Predictions: `{audio_name: {question: answer}}`, one
file per model, named NAME=FILE (a bare FILE is named by its stem); a `.meta.json` beside a file (as
generate_mullama.py writes) is copied into that model's settings. A constant-answer baseline
(`constant`, --constant_answer) is scored like a model in every run. Each model is reported on all
pairs and on the QA and captioning questions apart (llama/evaluation/metrics.py says which questions are captioning,
how pairs are formed and how each metric is computed).

Writes OUTPUT/results.md (the tables, also printed), results.csv (name, split, mode, metric, value),
results.json (`{NAME: {"paper": {...}, "standard": {...}, "splits": {...}, "settings": {...}},
"settings": {...}}`) and per_pair.jsonl (every scored pair's scores, for significance tests).
Run as a script it fixes PYTHONHASHSEED to 0 unless set: bert-score orders sentences through a set,
which moves its means by ~1e-7 from one hash seed to another.
"""

import argparse
import csv
import json
import os
import platform
import sys
from importlib.metadata import version
from pathlib import Path

if __name__ == "__main__" and "PYTHONHASHSEED" not in os.environ:
    # bert-score orders sentences through a set: a fixed hash seed makes reruns agree to the last bit.
    # Re-executed before the heavy imports below, so that they are paid once.
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})

from llama.evaluation import metrics  # noqa: E402
from llama.flags import HelpFormatter

CONSTANT = "constant"
LIBRARIES = ("nltk", "rouge-score", "sacrebleu", "bert-score", "transformers", "torch")
MODES = {"paper": ("paper",), "standard": ("standard",), "both": ("paper", "standard")}
LABELS = {
    "paper": {"bleu": "BLEU (char)", "bleu4": "BLEU-4 (char)", "meteor": "METEOR", "rougeL_recall": "ROUGE-L R",
              "bertscore_recall": "BERTScore R"},
    "standard": {"bleu1": "BLEU-1", "bleu2": "BLEU-2", "bleu3": "BLEU-3", "bleu4": "BLEU-4",
                 "sacrebleu": "sacreBLEU", "meteor": "METEOR", "rougeL_f1": "ROUGE-L F1",
                 "bertscore_f1": "BERTScore F1", "bertscore_f1_rescaled": "BERTScore F1 resc."},
}
ABOUT = {
    "paper": "the upstream MU-LLaMA script: nltk sentence BLEU over characters (default weights, and (0,0,0,1)), "
             "METEOR (wordpunct tokens, WordNet), ROUGE-L recall (stemmer), BERTScore recall; means over pairs",
    "standard": "corpus BLEU-1..4 (13a word tokens, cased, unsmoothed), sacreBLEU (0-100, defaults), METEOR, "
                "ROUGE-L F1 (stemmer), BERTScore F1, and F1 rescaled with bert-score's baseline",
}


def read_records(path: Path):
    """A JSON document, or JSON Lines."""
    text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def read_meta(path: Path) -> dict | None:
    """The `.meta.json` that generate_mullama.py writes beside a predictions file X.json: X.meta.json."""
    meta = path.with_name(path.name.removesuffix(".json") + ".meta.json")
    return json.loads(meta.read_text()) if meta.is_file() else None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--references", required=True, type=Path, help="EvalMusicQA JSON list (or JSONL)")
    parser.add_argument("--predictions", required=True, nargs="+", metavar="NAME=FILE",
                        help="{audio_name: {question: answer}} JSON files, one per model")
    parser.add_argument("--mode", choices=tuple(MODES), default="both",
                        help="paper: the upstream script's metrics (character BLEU, METEOR, ROUGE-L and BERTScore "
                             "recall); standard: corpus BLEU-1..4, sacreBLEU, METEOR, ROUGE-L F1, BERTScore F1; "
                             "both: one table each")
    parser.add_argument("--bertscore_model", default="roberta-large", help="hub name or local folder")
    parser.add_argument("--bertscore_layer", type=int,
                        help="hidden layer (default: bert-score's for the model's name, 17 for roberta-large)")
    parser.add_argument("--bertscore_baseline", help="rescale baseline TSV for the standard mode (default: the one "
                                                     "bert-score ships for the model's name, if any)")
    parser.add_argument("--bertscore_batch_size", type=int, default=64, help="sentence pairs per BERTScore batch")
    parser.add_argument("--device", help="BERTScore device (default: cuda if available)")
    parser.add_argument("--constant_answer", default=metrics.CONSTANT_ANSWER,
                        help="the baseline's answer to every question")
    parser.add_argument("--output", type=Path, default=Path("results/metrics"),
                        help="folder for results.md, results.csv, results.json and per_pair.jsonl (overwritten)")
    args = parser.parse_args(argv)
    named = [spec.split("=", 1) if "=" in spec else (Path(spec).stem, spec) for spec in args.predictions]
    names = [name for name, _ in named]
    if len(set(names)) < len(names) or {CONSTANT, "settings"} & set(names):
        parser.error(f"model names must be unique and not {CONSTANT!r} or 'settings': {names}")
    args.predictions = dict(named)
    return args


def fmt(value, metric: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" if metric == "sacrebleu" else f"{value:.4f}"


def markdown(results: dict, settings: dict) -> str:
    refs, bert = settings["references"], settings["bertscore"]
    lines = [
        "# Evaluation", "",
        f"- references: `{refs['path']}`: {refs['rows']} rows ({refs['qa_rows']} QA, {refs['captioning_rows']} "
        f"captioning; {refs['duplicate_rows']} repeat an earlier (audio, question) and are scored again)",
        f"- BERTScore: `{bert['model']}`, layer {bert['layer']}, no idf; rescale baseline: {bert['rescale_baseline']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in settings["versions"].items())
        + f"; PYTHONHASHSEED={settings['pythonhashseed']}",
        "- pairs: reference rows with an answer (the mean is over them); missing: rows without one, not scored "
        "(as upstream); empty: answers empty after strip(), scored (BERTScore 0)",
        f"- `{CONSTANT}`: every question answered \"{settings['constant_answer']}\"",
    ]
    for name, result in results.items():
        if name == CONSTANT:
            continue
        meta = result["settings"]["meta"]
        lines.append(f"- `{name}`: `{result['settings']['predictions']}`; "
                     + (f"generation: `{json.dumps(meta)}`" if meta else "no .meta.json (decoding settings unknown)"))
    for mode in settings["modes"]:
        labels = LABELS[mode]
        lines += ["", f"## {mode} mode", "", ABOUT[mode], "",
                  "| model | split | pairs | missing | empty | " + " | ".join(labels.values()) + " |",
                  "|---" * (5 + len(labels)) + "|"]
        for split in metrics.SPLITS:
            for name, result in results.items():
                block = result[mode] if split == "all" else result["splits"][split][mode]
                lines.append(f"| {name} | {split} | {block['pairs']} | {block['missing']} | {block['empty']} | "
                             + " | ".join(fmt(block[m], m) for m in labels) + " |")
    return "\n".join(lines) + "\n"


def csv_rows(results: dict, modes: tuple[str, ...]):
    for name, result in results.items():
        for split in metrics.SPLITS:
            for mode in modes:
                block = result[mode] if split == "all" else result["splits"][split][mode]
                for metric, value in block.items():
                    yield name, split, mode, metric, value


def main(argv=None):
    args = parse_args(argv)
    modes = MODES[args.mode]
    try:
        wordnet = metrics.require_wordnet()
        rows = metrics.reference_rows(read_records(args.references))
        predictions = {name: json.loads(Path(file).read_text()) for name, file in args.predictions.items()}
    except (LookupError, ValueError, OSError) as e:
        sys.exit(f"error: {e}")
    predictions[CONSTANT] = metrics.constant_predictions(rows, args.constant_answer)
    paired = {}
    for name, answers in predictions.items():
        try:
            paired[name] = metrics.pair_up(rows, answers)
        except ValueError as e:
            sys.exit(f"error: {name}: {e}")
    try:
        scorer = metrics.load_bertscorer(args.bertscore_model, args.bertscore_layer, args.device)
    except (OSError, ValueError) as e:
        sys.exit(f"error: cannot load the BERTScore model {args.bertscore_model!r} ({e}). Offline, pass "
                 "--bertscore_model a local folder (for the paper's numbers a copy of roberta-large, layer 17).")
    baseline_f1, baseline_source = (metrics.rescale_baseline(args.bertscore_model, scorer.num_layers,
                                                             args.bertscore_baseline)
                                    if "standard" in modes else (None, "not used (paper mode only)"))
    model_path = Path(args.bertscore_model)
    settings = {
        "modes": modes,
        "references": {"path": str(args.references), "rows": len(rows),
                       "qa_rows": sum(metrics.split_of(r.question) == "qa" for r in rows),
                       "captioning_rows": sum(metrics.split_of(r.question) == "captioning" for r in rows),
                       "duplicate_rows": len(rows) - len({(r.audio, r.question) for r in rows})},
        "captioning_questions": list(metrics.CAPTIONING_QUESTIONS),
        "constant_answer": args.constant_answer,
        "bertscore": {"model": str(model_path.resolve()) if model_path.is_dir() else args.bertscore_model,
                      "layer": scorer.num_layers, "idf": False, "batch_size": args.bertscore_batch_size,
                      "rescale_baseline": baseline_source, "baseline_f1": baseline_f1, "hash": scorer.hash},
        "sacrebleu_signature": metrics.sacrebleu_signature() if "standard" in modes else None,
        "wordnet": wordnet,
        "pythonhashseed": os.environ.get("PYTHONHASHSEED"),
        "versions": {"python": platform.python_version(), **{lib: version(lib) for lib in LIBRARIES}},
    }
    args.output.mkdir(parents=True, exist_ok=True)
    results = {}
    with open(args.output / "per_pair.jsonl", "w") as per_pair:
        for name, (pairs, missing) in paired.items():
            print(f"{name}: scoring {len(pairs)} pairs ({len(missing)} missing)", file=sys.stderr)
            scores = {**metrics.lexical_scores(pairs, desc=name),
                      **metrics.bertscores(pairs, scorer, args.bertscore_batch_size)}
            results[name] = metrics.summarize(pairs, missing, scores, modes, baseline_f1)
            file = args.predictions.get(name)
            results[name]["settings"] = {"predictions": file, "meta": read_meta(Path(file)) if file else None}
            for i, pair in enumerate(pairs):
                line = {"model": name, "audio": pair.audio, "question": pair.question,
                        "split": metrics.split_of(pair.question), **{k: float(v[i]) for k, v in scores.items()}}
                per_pair.write(json.dumps(line, ensure_ascii=False) + "\n")
    (args.output / "results.json").write_text(json.dumps({**results, "settings": settings}, indent=1,
                                                         ensure_ascii=False))
    with open(args.output / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("name", "split", "mode", "metric", "value"))
        writer.writerows(csv_rows(results, modes))
    table = markdown(results, settings)
    (args.output / "results.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
