"""Multiple-choice accuracy with bootstrap confidence intervals, per condition (the model and its controls) and
per group of questions (all, a dimension, a category, a genre), and the model's lead over each control.

Every group draws its resampled questions once, from one seed, and every condition is scored on the same
draws: an interval of a difference is the paired bootstrap's (the same questions on both sides of each draw).
"""

import numpy as np

CHANCE = 0.25  # four options, one correct


def question_groups(questions) -> dict[str, list[int]]:
    """{group: positions in `questions`}: all, the knowledge and reasoning dimensions (questions with any
    category of it, as the benchmark counts them), each category and each genre."""
    groups = {"all": list(range(len(questions))),
              "knowledge": [i for i, q in enumerate(questions) if q.knowledge],
              "reasoning": [i for i, q in enumerate(questions) if q.reasoning]}
    for kind in ("knowledge", "reasoning"):
        for name in sorted({c for q in questions for c in getattr(q, kind)}):
            groups[f"{kind}: {name}"] = [i for i, q in enumerate(questions) if name in getattr(q, kind)]
    for genre in sorted({q.genre for q in questions}):
        groups[f"genre: {genre or '(none)'}"] = [i for i, q in enumerate(questions) if q.genre == genre]
    return groups


def _draws(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _interval(values: np.ndarray, level: float) -> list[float]:
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def accuracy_tables(correct: dict[str, np.ndarray], unanswered: dict[str, np.ndarray], groups: dict[str, list[int]],
                    reference: str, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """{"accuracy": {condition: {group: {n, correct, accuracy, ci, unanswered}}},
        "lead": {control: {group: {difference, ci}}}}: `reference`'s accuracy minus each other condition's.
    correct / unanswered: {condition: bool [questions]}."""
    accuracy = {c: {} for c in correct}
    lead = {c: {} for c in correct if c != reference and reference in correct}
    for name, members in groups.items():
        if not members:
            continue
        draws = _draws(len(members), resamples, seed)
        means = {}
        for condition, hits in correct.items():
            sub = hits[members].astype(float)
            means[condition] = sub[draws].mean(axis=1)
            accuracy[condition][name] = {"n": len(members), "correct": int(sub.sum()), "accuracy": float(sub.mean()),
                                         "ci": _interval(means[condition], level),
                                         "unanswered": int(unanswered[condition][members].sum())}
        for condition in lead:
            gap = means[reference] - means[condition]
            lead[condition][name] = {"difference": accuracy[reference][name]["accuracy"]
                                     - accuracy[condition][name]["accuracy"], "ci": _interval(gap, level)}
    return {"accuracy": accuracy, "lead": lead}


def _cell(value: float, ci: list[float], sign: bool = False) -> str:
    return f"{100 * value:{'+' if sign else ''}.1f} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def markdown_table(tables: dict, names: dict[str, str], reference: str, columns=("all", "knowledge", "reasoning"),
                   unanswered: bool = True) -> str:
    """Accuracy % [95 % CI] per condition (rows, named by `names`) and group (columns, n in the header), then
    chance, then the reference's lead over each control."""
    accuracy, lead = tables["accuracy"], tables["lead"]
    first = accuracy.get(reference) or next(iter(accuracy.values()))  # a run of controls alone has no reference
    columns = [c for c in columns if c in first]
    header = "| condition | " + " | ".join(f"{c} (n={first[c]['n']})" for c in columns) + " |"
    header += " unanswered |" * unanswered
    lines = [header, "|---" * (len(columns) + 1 + unanswered) + "|"]
    for condition, rows in accuracy.items():
        cells = [_cell(rows[c]["accuracy"], rows[c]["ci"]) for c in columns]
        tail = [f"{rows['all']['unanswered']}"] if unanswered else []
        lines.append(f"| {names.get(condition, condition)} | " + " | ".join(cells + tail) + " |")
    lines.append("| chance | " + " | ".join(f"{100 * CHANCE:.1f}" for _ in columns) + " |" + " |" * unanswered)
    for condition, rows in lead.items():
        cells = [_cell(rows[c]["difference"], rows[c]["ci"], sign=True) for c in columns]
        lines.append(f"| {names.get(reference, reference)} − {names.get(condition, condition)} | "
                     + " | ".join(cells) + " |" + " |" * unanswered)
    return "\n".join(lines)
