"""Whether generated music follows the request, judged from the audio, with the controls that say what
the numbers mean (the demo MuMu-LLaMA's quality table).

The judge is a linear probe per fact (instrument family, tempo) on the demo music encoder's features,
trained on the synthetic set's training clips and scored on its held-out clips (its ceiling); it hears
the generated audio exactly as it heard those renderings. Each check is also run with the request
shuffled (a seeded derangement): music made for request i scored against request j's facts, and edits
applied to another clip than the one they are scored against. Those scores must fall to chance.
"""

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..audio import load_audio
from ..media import load_image
from .dataset import derangement
from .synthetic import FAMILIES, TEMPI, fact_accuracy
from .synthetic_mumu import COLOUR_FACTS, COLOURS, stated_colour

JUDGED = {"instrument": sorted(FAMILIES), "tempo": sorted(TEMPI)}
SECONDS = 3.0  # as the training clips


def train_probe(features: torch.Tensor, labels: torch.Tensor, classes: int, steps: int = 300, seed: int = 0):
    """A standardised linear classifier (full-batch Adam on cross-entropy): features [N, D] -> a function
    giving class indices."""
    torch.manual_seed(seed)
    mean, std = features.mean(0), features.std(0) + 1e-6
    layer = torch.nn.Linear(features.shape[1], classes)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.05)
    x = (features - mean) / std
    for _ in range(steps):
        loss = F.cross_entropy(layer(x), labels) + 1e-3 * layer.weight.square().sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return lambda f: layer((f - mean) / std).argmax(-1)


class Judge:
    """Probes for JUDGED facts over the encoder's flattened layer means."""

    def __init__(self, mert, cache, facts: dict, train_names: list[str], test_names: list[str]):
        self.mert = mert
        self.probes, self.ceiling = {}, {}
        x_train = torch.stack([cache.get(n).flatten() for n in train_names]).float()
        x_test = torch.stack([cache.get(n).flatten() for n in test_names]).float()
        for fact, classes in JUDGED.items():
            labels = torch.tensor([classes.index(facts[n][fact]) for n in train_names])
            probe = train_probe(x_train, labels, len(classes))
            with torch.no_grad():
                truth = torch.tensor([classes.index(facts[n][fact]) for n in test_names])
                self.ceiling[fact] = (probe(x_test) == truth).float().mean().item()
            self.probes[fact] = probe

    @torch.no_grad()
    def __call__(self, waves: list[np.ndarray]) -> list[dict]:
        """The facts each wave is heard to have."""
        features = self.mert.layer_means(waves).flatten(1).float()
        heard = {fact: self.probes[fact](features).tolist() for fact in JUDGED}
        return [{fact: JUDGED[fact][heard[fact][i]] for fact in JUDGED} for i in range(len(waves))]


def share(pairs) -> float:
    pairs = list(pairs)
    return sum(pairs) / len(pairs) if pairs else float("nan")


def generate(pipe, requests, batch_size: int, seed: int, temperature: float = 0.0) -> tuple[list, list]:
    """(replies, waves or None) for llama.Request objects; music from the projector's conditioning."""
    replies, waves = [], []
    for start in range(0, len(requests), batch_size):
        part = pipe.respond(requests[start:start + batch_size], max_new_tokens=40, temperature=temperature,
                            seed=seed + start)
        replies += part
        for i, reply in enumerate(part):
            complete = reply.conditioning is not None
            waves.append(pipe.music(reply, SECONDS, conditioning="projector", seed=seed + start + i)
                         if complete else None)
    return replies, waves


def score_requests(pipe, judge, requests: list[dict], batch_size: int, seed: int,
                   temperature: float = 0.0) -> tuple[dict, list]:
    """Text -> music requests ({"prompt", "facts"}): music made, and each judged fact heard as asked and
    against a shuffled request's facts (a seeded derangement); with the replies."""
    from llama.pipeline import Request

    replies, waves = generate(pipe, [Request(r["prompt"]) for r in requests], batch_size, seed, temperature)
    heard = [judge([w])[0] if w is not None else None for w in waves]
    other = [requests[j] for j in derangement(len(requests), seed)]
    row = {"n": len(requests), "music_made": share(w is not None for w in waves)}
    for fact in JUDGED:
        for suffix, against in (("", requests), ("_shuffled", other)):
            row[fact + suffix] = share(h is not None and h[fact] == r["facts"][fact]
                                       for h, r in zip(heard, against, strict=True))
    return row, replies


def check_generation(pipe, data, cache, batch_size: int = 16, seed: int = 0, questions: int = 200) -> dict:
    """The demo's quality table on the held-out requests of data/synthetic_requests.py (folder `data`),
    judged by probes on `cache` (the clips' features by pipe's encoder)."""
    from llama.pipeline import Request

    data = Path(data)
    facts = json.loads((data / "facts.json").read_text())
    names = sorted(facts)
    held = round(len(names) * 0.2)
    judge = Judge(pipe.model.mert, cache, facts, names[held:], names[:held])
    tests = json.loads((data / "requests_test.json").read_text())
    rate = pipe.sample_rate
    clips = {t["input_file"]: load_audio(data / t["input_file"], rate) for t in tests if "input_file" in t}
    result = {"probe_ceiling": judge.ceiling, "chance": {f: 1 / len(c) for f, c in JUDGED.items()}}

    texts = [t for t in tests if t["kind"] == "generate"]
    row, replies = score_requests(pipe, judge, texts, batch_size, seed)
    row["examples"] = [{"prompt": t["prompt"], "answer": r.text} for t, r in zip(texts[:3], replies, strict=False)]
    result["text_to_music"] = row

    edits = [t for t in tests if t["kind"].startswith("edit_")]
    own = [Request(t["prompt"], audio=clips[t["input_file"]]) for t in edits]
    swap = derangement(len(edits), seed)
    shuffled = [Request(t["prompt"], audio=clips[edits[j]["input_file"]]) for t, j in zip(edits, swap, strict=True)]
    edit_result = {}
    for label, requests in (("own_clip", own), ("shuffled_clip", shuffled)):
        replies, waves = generate(pipe, requests, batch_size, seed)
        heard = [judge([w])[0] if w is not None else None for w in waves]
        row = {}
        for fact in JUDGED:
            # the edited fact: heard as asked; the others: kept from the clip the edit was asked about
            changed = [(h, t) for h, t in zip(heard, edits, strict=True) if t["kind"] == f"edit_{fact}"]
            kept = [(h, t) for h, t in zip(heard, edits, strict=True) if t["kind"] != f"edit_{fact}"]
            row[f"{fact}_as_asked"] = share(h is not None and h[fact] == t["facts"][fact] for h, t in changed)
            row[f"{fact}_kept"] = share(h is not None and h[fact] == t["input_facts"][fact] for h, t in kept)
            row[f"n_{fact}_edits"], row[f"n_other_edits_{fact}"] = len(changed), len(kept)
        faster = [(h, t) for h, t in zip(heard, edits, strict=True) if t["kind"] == "edit_tempo"
                  and t["facts"]["tempo"] == "fast"]
        row["faster_heard_fast"] = share(h is not None and h["tempo"] == "fast" for h, _ in faster)
        row["faster_input_heard_fast"] = share(f["tempo"] == "fast" for f in judge([clips[t["input_file"]]
                                                                                    for _, t in faster]))
        row["n_faster"] = len(faster)
        row["music_made"] = share(w is not None for w in waves)
        edit_result[label] = row
    result["edits"] = edit_result

    records = [r for r in json.loads((data / "test.json").read_text()) if r["kind"] in JUDGED][:questions]
    record_clips = sorted({r["audio_name"] for r in records})
    waves = {n: load_audio(data / "audios" / n, rate) for n in record_clips}
    moved = dict(zip(record_clips, [record_clips[j] for j in derangement(len(record_clips), seed)], strict=True))
    result["questions"] = {}
    for label, hear in (("own_clip", {n: n for n in record_clips}), ("shuffled_clip", moved)):
        answers = []
        for start in range(0, len(records), batch_size):
            part = records[start:start + batch_size]
            answers += [r.text for r in pipe.respond([Request(r["conversation"][0]["value"],
                                                              audio=waves[hear[r["audio_name"]]]) for r in part],
                                                     max_new_tokens=24)]
        result["questions"][label] = fact_accuracy(records, answers, facts)
    return result


def check_phrasings(pipe, heldout: dict, data, cache, batch_size: int = 16, seed: int = 0,
                    temperature: float = 0.0) -> dict:
    """The demo on requests, edits and questions phrased as people write them (`heldout`, the hand-written
    set): how often music is made, the requested instrument and tempo heard (beside the same music scored
    against a shuffled request's facts, and chance), edits that change the instrument heard, and questions
    that make no music. Edits apply to held-out clips whose attribute differs from the one asked."""
    from llama.pipeline import Request

    data = Path(data)
    facts = json.loads((data / "facts.json").read_text())
    names = sorted(facts)
    held = names[:round(len(names) * 0.2)]
    judge = Judge(pipe.model.mert, cache, facts, names[len(held):], held)
    result = {"temperature": temperature, "chance": {f: 1 / len(c) for f, c in JUDGED.items()}}

    result["requests"] = score_requests(pipe, judge, heldout["requests"], batch_size, seed, temperature)[0]

    edits = heldout["edits"]
    # held-out clips first; a tiny set may need a training clip (or, failing all, one already so)
    clips = [next((n for n in held[i * 7 % len(held):] + held + names if facts[n][e["attribute"]] != e["value"]),
                  held[0]) for i, e in enumerate(edits)]
    rate = pipe.sample_rate
    waves_in = {n: load_audio(data / "audios" / n, rate) for n in set(clips)}
    _, waves = generate(pipe, [Request(e["prompt"], audio=waves_in[n]) for e, n in zip(edits, clips, strict=True)],
                        batch_size, seed, temperature)
    instrument = [(w, e) for w, e in zip(waves, edits, strict=True) if e["attribute"] == "instrument"]
    result["edits"] = {"n": len(edits), "music_made": share(w is not None for w in waves),
                       "n_instrument": len(instrument),
                       "instrument_as_asked": share(w is not None and judge([w])[0]["instrument"] == e["value"]
                                                    for w, e in instrument)}

    questions = heldout["questions"]
    replies = []
    for start in range(0, len(questions), batch_size):
        part = [Request(q["prompt"], audio=waves_in[clips[(start + i) % len(clips)]])
                for i, q in enumerate(questions[start:start + batch_size])]
        replies += pipe.respond(part, max_new_tokens=40, temperature=temperature, seed=seed + start)
    result["questions"] = {"n": len(questions), "no_music": share(r.conditioning is None and "[AUD" not in r.text
                                                                  for r in replies),
                           "examples": [{"prompt": q["prompt"], "answer": r.text}
                                        for q, r in zip(questions[:4], replies, strict=False)]}
    return result


def check_pictures(pipe, heldout: dict, pictures, data, cache, images: int = 96, batch_size: int = 16, seed: int = 0,
                   temperature: float = 0.0) -> dict:
    """The demo on pictures (`heldout` = the hand-written {"requests", "questions"}, asked in turn of the first
    `images` held-out pictures of `pictures`, a synthetic_mumu folder): music made, the colour's instrument
    and tempo (synthetic_mumu.COLOUR_FACTS) heard, questions answered with the picture's colour and without
    music; each beside the same outputs scored against another picture's facts (a seeded derangement, i.e. a
    shuffled picture) and chance. The judge's probes are trained on the music set `data` (features in `cache`)."""
    from llama.pipeline import Request

    pictures = Path(pictures)
    facts = json.loads((pictures / "images.json").read_text())
    names = sorted(facts)[:min(images, round(len(facts) * 0.25))]  # make_mumu_dataset's held-out share
    seen = {n: load_image(pictures / "images" / n) for n in names}
    music_facts = json.loads((Path(data) / "facts.json").read_text())
    clips = sorted(music_facts)
    held = round(len(clips) * 0.2)
    judge = Judge(pipe.model.mert, cache, music_facts, clips[held:], clips[:held])
    other = derangement(len(names), seed)
    prompts = heldout["requests"]
    requests = [Request(prompts[i % len(prompts)], image=seen[n]) for i, n in enumerate(names)]
    _, waves = generate(pipe, requests, batch_size, seed, temperature)
    heard = [judge([w])[0] if w is not None else None for w in waves]
    wanted = [COLOUR_FACTS[facts[n]["colour"]] for n in names]
    result = {"temperature": temperature, "images": len(names),
              "chance": {"instrument": 1 / len(FAMILIES), "tempo": 1 / len(TEMPI), "colour": 1 / len(COLOURS)},
              "requests": {"n": len(names), "music_made": share(w is not None for w in waves)}}
    for fact in JUDGED:
        for suffix, against in (("", wanted), ("_shuffled", [wanted[j] for j in other])):
            result["requests"][fact + suffix] = share(h is not None and h[fact] == f[fact]
                                                      for h, f in zip(heard, against, strict=True))
    questions = heldout["questions"]
    replies = []
    for start in range(0, len(names), batch_size):
        part = [Request(questions[i % len(questions)], image=seen[names[i]])
                for i in range(start, min(start + batch_size, len(names)))]
        replies += pipe.respond(part, max_new_tokens=24, temperature=temperature, seed=seed + start)
    colours = [facts[n]["colour"] for n in names]
    result["questions"] = {
        "n": len(names), "no_music": share(r.conditioning is None and "[AUD" not in r.text for r in replies),
        "colour": share(stated_colour(r.text) == c for r, c in zip(replies, colours, strict=True)),
        "colour_shuffled": share(stated_colour(r.text) == colours[j] for r, j in zip(replies, other, strict=True)),
        "examples": [{"prompt": questions[i % len(questions)], "answer": r.text} for i, r in enumerate(replies[:4])]}
    return result


def pictures_table(q: dict) -> str:
    r, a, chance = q["requests"], q["questions"], q["chance"]
    rows = [("picture -> music: music made", r["n"], r["music_made"], None, None),
            ("picture -> music: the colour's instrument heard", r["n"], r["instrument"], r["instrument_shuffled"],
             chance["instrument"]),
            ("picture -> music: the colour's tempo heard", r["n"], r["tempo"], r["tempo_shuffled"], chance["tempo"]),
            ("question about a picture: its colour named", a["n"], a["colour"], a["colour_shuffled"],
             chance["colour"]),
            ("question about a picture: no music made", a["n"], a["no_music"], None, None)]
    return _table(rows, f"temperature {q['temperature']:g}, {q['images']} held-out pictures", "picture shuffled")


def _table(rows, title: str, control: str) -> str:
    lines = [title, "", f"| check | n | result | {control} | chance |", "|---|---|---|---|---|"]
    for name, n, value, shuffled, ch in rows:
        lines.append(f"| {name} | {n} | **{value:.1%}** | {'' if shuffled is None else f'{shuffled:.1%}'} | "
                     f"{'' if ch is None else f'{ch:.1%}'} |")
    return "\n".join(lines)


def phrasings_table(q: dict) -> str:
    r, e, chance = q["requests"], q["edits"], q["chance"]
    rows = [("requests: music made", r["n"], r["music_made"], None, None),
            ("requests: instrument family heard", r["n"], r["instrument"], r["instrument_shuffled"],
             chance["instrument"]),
            ("requests: tempo heard", r["n"], r["tempo"], r["tempo_shuffled"], chance["tempo"]),
            ("edits: music made", e["n"], e["music_made"], None, None),
            ("edits of the instrument: instrument heard as asked", e["n_instrument"], e["instrument_as_asked"], None,
             chance["instrument"]),
            ("questions about a clip: no music made", q["questions"]["n"], q["questions"]["no_music"], None, None)]
    return _table(rows, f"temperature {q['temperature']:g}", "request shuffled")


def markdown_table(q: dict) -> str:
    chance = q["chance"]
    t, own, shuffled = q["text_to_music"], q["edits"]["own_clip"], q["edits"]["shuffled_clip"]
    rows = [
        ("text -> music: instrument family heard", t["n"], t["instrument"], t["instrument_shuffled"],
         chance["instrument"]),
        ("text -> music: tempo heard", t["n"], t["tempo"], t["tempo_shuffled"], chance["tempo"]),
        ("edit 'play it on the X': instrument heard", own["n_instrument_edits"], own["instrument_as_asked"],
         None, chance["instrument"]),
        ("edit 'make it faster / slower': tempo heard", own["n_tempo_edits"], own["tempo_as_asked"], None,
         chance["tempo"]),
        ("other edits: the clip's instrument kept", own["n_other_edits_instrument"], own["instrument_kept"],
         shuffled["instrument_kept"], chance["instrument"]),
        ("other edits: the clip's tempo kept", own["n_other_edits_tempo"], own["tempo_kept"], shuffled["tempo_kept"],
         chance["tempo"]),
    ]
    lines = ["| check | n | result | request shuffled | chance |", "|---|---|---|---|---|"]
    for name, n, value, control, ch in rows:
        lines.append(f"| {name} | {n} | **{value:.1%}** | {'' if control is None else f'{control:.1%}'} | {ch:.1%} |")
    for kind, row in q["questions"]["own_clip"].items():
        lines.append(f"| question about a clip: {kind} | {row['n']} | **{row['accuracy']:.1%}** | "
                     f"{q['questions']['shuffled_clip'][kind]['accuracy']:.1%} | {row['chance']:.1%} |")
    lines.append(f"\n'Make it faster': {own['faster_heard_fast']:.1%} of {own['n_faster']} results heard fast, "
                 f"against {own['faster_input_heard_fast']:.1%} of their input clips. Judge (linear probes on the "
                 f"demo encoder) on held-out real clips: instrument {q['probe_ceiling']['instrument']:.1%}, "
                 f"tempo {q['probe_ceiling']['tempo']:.1%}.")
    return "\n".join(lines)
