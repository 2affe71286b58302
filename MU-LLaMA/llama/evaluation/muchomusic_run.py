"""Running a model on MuChoMusic under each condition, resumably, and scoring every condition in every mode.

Conditions: "model" (each question's own audio), and the controls "silence" and "noise" (the audio replaced by
digital silence, or by white noise at -20 dBFS RMS, of the same length), "shuffled" (another question's track:
a seeded derangement of the tracks) and "text_only" (the base LLM, no audio, the same template). A model that
listens beats every control; one that answers from the text alone does not.

Each condition writes `CONDITION.json` in the benchmark's own input format (its evaluate.py reads it), with the
shown order, the output, and the options' log-probabilities, after every queue of questions: a killed run
resumes there. A question whose audio is missing or unreadable is left out of every table, counted and listed
(report.json).
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from tqdm import tqdm

from ..audio import AudioError
from ..cli import UsageError
from ..data.dataset import derangement
from ..records import atomic_path
from .choice_tables import CHANCE, accuracy_tables, markdown_table, question_groups
from .muchomusic import Question, answer_orders, likelihood_choice, paper_choice, prompt, strict_choice

CONDITIONS = ("model", "silence", "noise", "shuffled", "text_only")
NAMES = {"model": "model", "silence": "silence", "noise": "noise", "shuffled": "shuffled audio",
         "text_only": "text-only base LLM"}
CONDITION_MEANINGS = {"model": "each question's own audio", "silence": "digital silence as long as the audio",
                      "noise": "white noise at -20 dBFS RMS as long as the audio",
                      "shuffled": "another question's track (a seeded derangement of the tracks)",
                      "text_only": "the base LLM of --llama_dir, no audio, the model's template"}
AUDIO_CONDITIONS = ("model", "silence", "noise", "shuffled")
MODES = {"paper": "generated text, the benchmark's mapping to a letter (its published numbers)",
         "strict": "generated text, a mapping no capital inside a word can fool",
         "likelihood": "the option with the highest summed log-probability as the answer",
         "likelihood_per_token": "the option with the highest mean log-probability per token"}
NOISE_RMS = 0.1  # -20 dBFS


@dataclass
class Item:
    question: Question
    audio: Path  # the file the benchmark names for it
    order: list[int]  # which answer is shown as A..D (0 = the correct one)
    prompt: str

    @property
    def shown(self) -> list[str]:
        return [self.question.answers[j] for j in self.order]

    @property
    def truth(self) -> int:
        return self.order.index(0)


def header_error(path: Path) -> str | None:
    """Why a file is no audio, from its header alone (a track found unreadable only while decoding is left out
    then, of every condition); None when its header reads as audio."""
    try:
        with path.open("rb") as f:
            soundfile.info(f)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as e:
        return f"{path} is not readable audio ({getattr(e, 'error_string', e)})"
    return None


def prepare(questions: list[Question], paths: dict, seed: int, examples: list[str]) -> tuple[list[Item], dict]:
    """Items with their seeded order and prompt, and {row: why} for questions without an audio file (none named,
    none there, or one whose header is no audio's): those are left out before anything runs, so that the shuffled
    control draws among readable tracks only."""
    items, missing = [], {}
    for question, order in zip(questions, answer_orders(len(questions), seed), strict=True):
        path = paths[question.row]
        if not isinstance(path, Path):
            missing[question.row] = path
        elif not path.is_file():
            missing[question.row] = f"no file {path}"
        elif (error := header_error(path)) is not None:
            missing[question.row] = error
        else:
            shown = [question.answers[j] for j in order]
            items.append(Item(question, path, order, prompt(question.question, shown, examples)))
    return items, missing


def record(item: Item) -> dict:
    """The benchmark's input record of one question (prepare_prompts.py's fields) and its CSV row."""
    q = item.question
    return {"id": int(q.audio_id) if q.dataset == "sdd" else q.audio_id, "row": q.row, "prompt": item.prompt,
            "answers": item.shown, "answer_orders": item.order, "dataset": q.dataset, "genre": q.genre,
            "reasoning": list(q.reasoning), "knowledge": list(q.knowledge), "audio_path": str(item.audio)}


def heard_tracks(items: list[Item], condition: str, seed: int) -> dict[Path, Path]:
    """{a question's track: the track it is answered with}."""
    tracks = sorted({item.audio for item in items})
    if condition != "shuffled":
        return {t: t for t in tracks}
    return dict(zip(tracks, [tracks[j] for j in derangement(len(tracks), seed)], strict=True))


def condition_clip(condition: str, wave: np.ndarray, row: int, seed: int) -> np.ndarray:
    if condition == "silence":
        return np.zeros_like(wave)
    if condition == "noise":
        return (NOISE_RMS * np.random.default_rng([seed, row]).standard_normal(len(wave))).astype(np.float32)
    return wave


def read_records(path: Path, items: list[Item]) -> dict[int, dict]:
    """{row: record} of a resumed condition; refused when its questions were shown otherwise (other seed/file)."""
    if not path.exists():
        return {}
    try:
        done = {r["row"]: r for r in json.loads(path.read_text())}
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise UsageError(f"{path} is not the JSON this script writes ({e}); move it away to start over") from e
    for item in items:
        before = done.get(item.question.row)
        if before and (before["prompt"], before["answers"]) != (item.prompt, item.shown):
            raise UsageError(f"{path} holds row {item.question.row} shown otherwise (another --order_seed, "
                             "--in_context or muchomusic.csv): give another --output_dir")
    return done


def write_records(path: Path, done: dict[int, dict]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps([done[row] for row in sorted(done)], indent=1, ensure_ascii=False))


def pending(items: list[Item], done: dict[int, dict], generate: bool, likelihood: bool, unreadable: dict) -> list[Item]:
    """The items `done` (a condition's records) holds no answer (generate) or option scores (likelihood) of yet,
    less those whose audio could not be read."""
    wanted = ["model_output"] * generate + ["option_logprobs"] * likelihood
    return [item for item in items if item.question.row not in unreadable
            and not all(k in done.get(item.question.row, {}) for k in wanted)]


def heard(condition: str, item: Item, tracks: dict[Path, Path]) -> str:
    """What a question was answered with, for its record."""
    if condition in ("silence", "noise"):
        return f"{condition} as long as {item.audio}"
    return str(tracks[item.audio])


def run_condition(pipeline, todo: list[Item], items: list[Item], condition: str, out: Path,
                  done: dict[int, dict], *, generate: bool, likelihood: bool, order_seed: int, batch_size: int,
                  queue_size: int, unreadable: dict, **sampling) -> None:
    """Answer (generate) and score the options (likelihood) of the items `todo` (`pending` of `items`), adding them
    to `done` (the condition's records, read from `out`) and writing `out`; the rows whose audio cannot be read go
    to `unreadable` with why (kept by the caller: no condition asks them again)."""
    audio = condition in AUDIO_CONDITIONS
    tracks = heard_tracks(items, condition, order_seed) if audio else {}
    todo.sort(key=lambda item: (str(tracks.get(item.audio, "")), item.question.row))  # each track read once
    progress = tqdm(total=len(todo), unit="question", desc=NAMES[condition])
    loaded: dict[Path, np.ndarray] = {}
    failed: dict[Path, str] = {}
    for start in range(0, len(todo), queue_size):
        part = todo[start:start + queue_size]
        needed = {tracks[item.audio] for item in part} if audio else set()
        loaded = {track: wave for track, wave in loaded.items() if track in needed}
        for track in sorted(needed - loaded.keys() - failed.keys()):
            try:
                loaded[track] = pipeline.read("music", track)
            except AudioError as e:
                failed[track] = str(e)
                tqdm.write(f"skipped {track}: {e}", file=sys.stderr)
        batch, waves = [], []
        for item in part:
            track = tracks.get(item.audio)
            if audio and track in failed:
                unreadable[item.question.row] = failed[track]
            else:
                batch.append(item)
                waves.append(condition_clip(condition, loaded[track], item.question.row, order_seed) if audio else None)
        waves = waves if audio else None
        rows = [done.setdefault(item.question.row, record(item)) for item in batch]
        prompts = [item.prompt for item in batch]
        if likelihood:  # batch_size questions at a time: each holds four rows of the prompt's cache
            for i in range(0, len(batch), batch_size):
                scores = pipeline.option_logprobs(None if waves is None else waves[i:i + batch_size],
                                                  prompts[i:i + batch_size],
                                                  [item.shown for item in batch[i:i + batch_size]])
                for row, row_scores in zip(rows[i:i + batch_size], scores, strict=True):
                    row["option_logprobs"] = [s for s, _ in row_scores]
                    row["option_tokens"] = [n for _, n in row_scores]
        if generate and batch:  # the whole part at once: continuous batching keeps batch_size rows busy
            for row, text in zip(rows, pipeline.answer(waves, prompts, batch_size=batch_size, **sampling),
                                 strict=True):
                row["model_output"] = text
        for row, item in zip(rows, batch, strict=True):
            if audio:
                row["heard"] = heard(condition, item, tracks)
        if batch:
            write_records(out, done)  # once per part: a killed run loses at most --queue_size questions
        progress.update(len(part))
    progress.close()


def choices(records: list[dict], mode: str) -> np.ndarray:
    """The shown option each record chose in `mode` (-1: unanswered)."""
    if mode == "paper":
        return np.array([paper_choice(r["model_output"], r["answers"]) for r in records])
    if mode == "strict":
        return np.array([strict_choice(r["model_output"], r["answers"]) for r in records])
    return np.array([likelihood_choice(list(zip(r["option_logprobs"], r["option_tokens"], strict=True)),
                                       per_token=mode == "likelihood_per_token") for r in records])


def score(items: list[Item], results: dict[str, dict[int, dict]], modes: list[str], missing: dict, total: int,
          resamples: int, seed: int) -> dict:
    """Every mode's tables over the questions every condition answered (the others listed as missing)."""
    rows = set.intersection(*(set(r) for r in results.values())) if results else set()
    scored = [item for item in items if item.question.row in rows]
    missing = {**{i.question.row: "a condition has not answered it (its audio could not be read?)"
                  for i in items if i.question.row not in rows}, **missing}
    truth = np.array([item.truth for item in scored])
    groups = question_groups([item.question for item in scored])
    report = {"questions": total, "scored": len(scored), "chance": CHANCE,
              "missing": {"count": len(missing), "rows": {str(k): v for k, v in sorted(missing.items())}},
              "modes": {}}
    for mode in modes:
        needed = "model_output" if mode in ("paper", "strict") else "option_logprobs"
        runs = {c: [results[c][i.question.row] for i in scored] for c in results
                if all(needed in r for r in results[c].values())}
        if not runs or not scored:
            continue
        picked = {c: choices(records, mode) for c, records in runs.items()}
        correct = {c: p == truth for c, p in picked.items()}
        tables = accuracy_tables(correct, {c: p == -1 for c, p in picked.items()}, groups, reference="model",
                                 resamples=resamples, seed=seed)
        report["modes"][mode] = {"meaning": MODES[mode], **tables}
    return report


def markdown_report(report: dict, settings: dict) -> str:
    lines = [f"# MuChoMusic: {report['scored']} questions scored of {report['questions']} "
             f"({report['missing']['count']} without audio, listed in report.json); chance {100 * CHANCE:.0f} %", "",
             "Accuracy % [95 % bootstrap CI over questions]; the last rows: the model's lead over each control "
             "(paired bootstrap).", "", "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()), ""]
    for mode, tables in report["modes"].items():
        lines += [f"## {mode}: {tables['meaning']}", "",
                  markdown_table(tables, NAMES, "model", unanswered=mode in ("paper", "strict")), ""]
        first = next(iter(tables["accuracy"].values()))
        lines += ["| group | n | " + " | ".join(NAMES[c] for c in tables["accuracy"]) + " |",
                  "|---|---" + "|---" * len(tables["accuracy"]) + "|"]
        for group in [g for g in first if ":" in g]:
            cells = [f"{100 * tables['accuracy'][c][group]['accuracy']:.1f}" for c in tables["accuracy"]]
            lines.append(f"| {group} | {first[group]['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
