"""The demo MuMu-LLaMA's training phrasings (llama/data/phrasings.py) and its hand-written held-out set
(demo/mumu/heldout_requests.json): the held-out prompts are not phrasings the training produces, and they
cover what the measurement needs."""

import json
import random
import re

from llama.data import phrasings
from llama.data.synthetic import FAMILIES, LOUDNESS, MODES, TEMPI
from llama.data.synthetic_requests import EDITS, random_edit, random_request

from conftest import ROOT

HELDOUT = json.loads((ROOT / "demo" / "mumu" / "heldout_requests.json").read_text())
CLASSES = {"instrument": FAMILIES, "tempo": TEMPI, "mode": MODES, "loudness": LOUDNESS}


def norm(text: str) -> str:
    return re.sub(r"[^a-z' ]+", " ", text.lower()).split().__str__()


def generated(n: int) -> set[str]:
    rng = random.Random(0)
    clip = {"instrument": "piano", "tempo": "slow", "mode": "major", "loudness": "quiet"}
    out = set()
    for i in range(n):
        out.add(norm(random_request(rng, templated=0.3)[0]))
        out.add(norm(random_edit(clip if i % 2 else {**clip, "instrument": "organ", "tempo": "fast", "mode": "minor",
                                                     "loudness": "loud"}, rng, templated=0.3)[1]))
        out.add(norm(phrasings.question_phrase(rng.choice(sorted(phrasings.QUESTION_WORDS)), rng)))
        out.add(norm(phrasings.picture_phrase(rng, request=i % 2 == 0)))
    return out


def test_heldout_prompts_are_not_training_phrasings():
    train = generated(40000)
    held = [r["prompt"] for part in ("requests", "edits", "questions") for r in HELDOUT[part]]
    held += [p for part in ("requests", "questions") for p in HELDOUT["pictures"][part]]
    assert len(train) > 30000  # the phrasings vary
    assert not [p for p in held if norm(p) in train]


def test_heldout_set_covers_the_measurement():
    requests, edits, questions = HELDOUT["requests"], HELDOUT["edits"], HELDOUT["questions"]
    assert len(requests) >= 40 and len(edits) >= 20 and len(questions) >= 20
    assert len({norm(r["prompt"]) for part in (requests, edits, questions) for r in part}) == \
        len(requests) + len(edits) + len(questions)
    for r in requests:  # the judged facts are always stated, with known classes
        assert {"instrument", "tempo"} <= r["facts"].keys() and all(v in CLASSES[k] for k, v in r["facts"].items())
    for e in edits:
        assert e["attribute"] in EDITS and e["value"] in CLASSES[e["attribute"]]
    assert sum(e["attribute"] == "instrument" for e in edits) >= 12
    assert {q["about"] for q in questions} == set(phrasings.QUESTION_WORDS)
    pictures = HELDOUT["pictures"]
    assert len(pictures["requests"]) >= 10 and len(pictures["questions"]) >= 8


def test_edits_change_the_instrument_most():
    rng = random.Random(2)
    clip = {"instrument": "piano", "tempo": "slow", "mode": "major", "loudness": "quiet"}
    kinds = [random_edit(clip, rng, templated=0.3)[0] for _ in range(4000)]
    assert abs(kinds.count("instrument") / len(kinds) - phrasings.EDIT_WEIGHTS["instrument"]) < 0.03


def test_picture_records_pair_each_picture_with_its_music_and_caption(tmp_path):
    from llama.data.synthetic_mumu import COLOUR_MUSIC, make_mumu_dataset
    from llama.data.synthetic_requests import make_picture_requests

    music = tmp_path / "music"
    music.mkdir()
    (music / "facts.json").write_text("{}")
    make_mumu_dataset(tmp_path / "pictures", music, images=20)
    counts = make_picture_requests(tmp_path / "pictures", seed=0)
    assert counts == {"pictures_train": 30, "pictures_test": 10}  # two records per picture, a quarter held out
    facts = json.loads((tmp_path / "pictures" / "images.json").read_text())
    records = json.loads((tmp_path / "pictures" / "pictures_train.json").read_text())
    for music_record, question in zip(records[::2], records[1::2], strict=True):
        image = facts[music_record["input_file"].removeprefix("images/")]
        assert music_record["conversation"][1]["caption"] == COLOUR_MUSIC[image["colour"]]
        assert music_record["conversation"][0]["input_modality"] == "image"
        assert question["conversation"][1] == {"from": "gpt", "value": f"A {image['colour']} picture.",
                                               "output_modality": "text"}


def test_free_phrasings_name_the_facts_they_carry():
    rng = random.Random(1)
    for _ in range(500):
        facts = {"instrument": rng.choice(sorted(FAMILIES)), "tempo": rng.choice(sorted(TEMPI))}
        text = phrasings.request_phrase(facts, rng).lower()
        assert any(w in text for w in phrasings.INSTRUMENT_WORDS[facts["instrument"]])
        assert any(w in text for w in phrasings.FACT_WORDS["tempo"][facts["tempo"]]) or "tempo" not in facts
