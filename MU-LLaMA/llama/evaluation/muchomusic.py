"""MuChoMusic (Weck, Manco et al., ISMIR 2024) as its authors run it: the questions of `muchomusic.csv`, the
audio each names (MusicCaps clips and Song Describer tracks), the prompt with the four answers in a random
order, and the rules that turn a model's output into a choice.

The benchmark's own script draws the answer order unseeded; here it is drawn from `seed` and saved with every
output. Two of its habits are kept where they decide a published number and named where they do:
- `paper_choice` is its mapping from output to letter: after the last "The correct answer is:", the set of
  the characters A-D anywhere in the text decides when it holds exactly one (so the capital of "A piano" or
  "Bach" counts), else the first option in display order whose lower-cased text the output contains.
- its default configuration puts one worked example before every question (`IN_CONTEXT_EXAMPLE`).
`strict_choice` is a mapping a capital letter inside a word cannot fool.
"""

import ast
import csv
import random
import re
from dataclasses import dataclass
from pathlib import Path

LETTERS = "ABCD"
ANSWER_PREFIX = "The correct answer is:"
# muchomusic_eval/configs/default.yaml's one in-context example, as YAML reads it
IN_CONTEXT_EXAMPLE = ("Question: What rhythm pattern do the digital drums primarily follow in this pop music piece? \n"
                      " Options: (A) Four on the floor. (B) Off-beat syncopation. (C) Scat singing. (D) E-guitar "
                      "playing a simple melody. \n The correct answer is: A")
IN_CONTEXT = {"default": [IN_CONTEXT_EXAMPLE], "none": []}
COLUMNS = ("question", "dataset", "dataset_identifier", "genre", "music_reasoning", "music_knowledge",
           "correct_answer", "distractor_1_answer", "distractor_2_answer", "distractor_3_answer")


@dataclass(frozen=True)
class Question:
    row: int  # 0-based data row of muchomusic.csv: the key of every output
    question: str
    answers: tuple[str, ...]  # the correct answer first, then distractors 1-3 (the CSV's order)
    dataset: str  # "sdd" or "musiccaps"
    audio_id: str  # the Song Describer track id, or the MusicCaps YouTube id
    genre: str
    reasoning: tuple[str, ...]
    knowledge: tuple[str, ...]


def _categories(text: str, row: int, column: str) -> tuple[str, ...]:
    try:
        value = ast.literal_eval(text) if text.strip() else []
    except (ValueError, SyntaxError):
        raise ValueError(f"muchomusic.csv row {row + 1}: {column} is not a Python list: {text[:60]!r}") from None
    if not isinstance(value, list):
        raise ValueError(f"muchomusic.csv row {row + 1}: {column} is not a Python list: {text[:60]!r}")
    return tuple(map(str, value))


def read_questions(path) -> list[Question]:
    """The benchmark's questions as published (extra columns are ignored; empty category lists are []; a
    byte-order mark, as spreadsheets write, is dropped)."""
    with Path(path).open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} is not MuChoMusic's muchomusic.csv: no column {', '.join(missing)}")
        rows = list(reader)
    questions = []
    for i, r in enumerate(rows):
        identifier = r["dataset_identifier"].removesuffix(".json")
        if r["dataset"] == "sdd":
            if not identifier.strip().isdigit():
                raise ValueError(f"{path} row {i + 1}: a Song Describer dataset_identifier is a track id "
                                 f"('<id>.json'), not {r['dataset_identifier']!r}")
            audio_id = str(int(identifier))
        elif r["dataset"] == "musiccaps":
            audio_id = "_".join(identifier.split("_")[:-1])  # "<ytid>_<n>": the YouTube id may hold "_"
        else:
            raise ValueError(f"{path} row {i + 1}: dataset {r['dataset']!r} is neither sdd nor musiccaps")
        answers = tuple(r[c] for c in COLUMNS[6:])
        questions.append(Question(i, r["question"], answers, r["dataset"], audio_id, r["genre"],
                                  _categories(r["music_reasoning"], i, "music_reasoning"),
                                  _categories(r["music_knowledge"], i, "music_knowledge")))
    return questions


def audio_paths(questions: list[Question], musiccaps_csv, musiccaps_audio, sdd_csv, sdd_audio) -> dict[int, Path | str]:
    """{row: the audio file the benchmark reads, or why there is none}: MusicCaps clips as
    `[ytid]-[start-end].wav` (times from musiccaps-public.csv), Song Describer tracks as the `.2min.mp3` of
    their song_describer.csv path. The first row of a track in each table decides, as in the benchmark."""
    tables = {}
    for dataset, table, columns in (("musiccaps", musiccaps_csv, ("ytid", "start_s", "end_s")),
                                    ("sdd", sdd_csv, ("track_id", "path"))):
        if any(q.dataset == dataset for q in questions):
            with Path(table).open(newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                missing = [c for c in columns if c not in (reader.fieldnames or [])]
                if missing:
                    raise ValueError(f"{table} is not {dataset}'s table: no column {', '.join(missing)}")
                tables[dataset] = {}
                for r in reader:
                    tables[dataset].setdefault(r[columns[0]].strip(), r)
    paths = {}
    for q in questions:
        entry = tables[q.dataset].get(q.audio_id)
        if entry is None:
            name = Path(musiccaps_csv if q.dataset == "musiccaps" else sdd_csv).name
            paths[q.row] = f"{q.audio_id} is not in {name}"
        elif q.dataset == "musiccaps":
            try:
                start, end = int(float(entry["start_s"])), int(float(entry["end_s"]))
            except ValueError:
                raise ValueError(f"{musiccaps_csv}: {q.audio_id}'s start_s/end_s are no numbers") from None
            paths[q.row] = Path(musiccaps_audio) / f"[{q.audio_id}]-[{start}-{end}].wav"
        else:
            paths[q.row] = Path(sdd_audio) / entry["path"].replace(".mp3", ".2min.mp3")
    return paths


def answer_orders(n: int, seed: int) -> list[list[int]]:
    """Per question, which answer (0 = the correct one) is shown as A, B, C and D: the benchmark's
    random.sample(range(4), 4), drawn from one seeded generator in question order."""
    rng = random.Random(seed)
    return [rng.sample(range(len(LETTERS)), k=len(LETTERS)) for _ in range(n)]


def prompt(question: str, shown: list[str], examples: list[str]) -> str:
    """The benchmark's text of one question: its examples, the question and the options as shown."""
    text = " ".join(examples) + "\n Question: " if examples else "Question: "
    options = "".join(f"({letter}) {answer} " for letter, answer in zip(LETTERS, shown, strict=True))
    text += question + "\n Options: " + options
    return text + "\n The correct answer is: "


def paper_choice(output: str, shown: list[str]) -> int:
    """The benchmark's mapping of an output to a shown option (0-3), or -1 for unanswered."""
    text = output.split(ANSWER_PREFIX)[-1].strip()
    letters = set(LETTERS) & set(text)
    if len(letters) == 1:
        return LETTERS.index(letters.pop())
    lowered = text.lower()
    return next((i for i, answer in enumerate(shown) if answer.lower().strip() in lowered), -1)


# A letter given as an answer: "(B)" anywhere; "B", "B.", "B)", "B:" opening the text; "option B", "answer: B",
# "answer is (B)".
_MARKED = re.compile(r"\(([A-D])\)|^([A-D])(?=[.):,]|\s*$)|(?i:\b(?:option|answer(?:\s+is)?))\s*:?\s*\(?([A-D])\b")


def strict_choice(output: str, shown: list[str]) -> int:
    """A mapping a capital inside a word or a leading article cannot fool: the one letter the output marks
    as its answer; with none marked, the one option whose whole text (as words) the output contains, an option
    inside a longer matched one not counting; else -1 (several letters or options: unanswered)."""
    text = output.split(ANSWER_PREFIX)[-1].strip()
    letters = {next(g for g in m.groups() if g) for m in _MARKED.finditer(text)}
    if letters:
        return LETTERS.index(letters.pop()) if len(letters) == 1 else -1
    lowered = text.lower()
    found = [i for i, answer in enumerate(shown) if answer.strip() and
             re.search(r"(?<!\w)" + re.escape(answer.lower().strip().rstrip(".")) + r"(?!\w)", lowered)]
    found = [i for i in found if not any(j != i and shown[i].lower().strip().rstrip(".") in shown[j].lower()
                                         for j in found)]
    return found[0] if len(found) == 1 else -1


def likelihood_choice(logprobs: list[tuple[float, int]], per_token: bool) -> int:
    """The shown option with the highest summed (or, per_token, mean per token) log-probability."""
    scores = [total / count if per_token else total for total, count in logprobs]
    return max(range(len(scores)), key=scores.__getitem__)
