"""Music requests for the demo MuMu-LLaMA, in the original record schema, over the synthetic music set.

From a folder written by `synthetic.make_dataset` (clips with known facts; its first 20 % held out):

    generate_{train,test}.json   text -> music: "Compose a fast violin piece in a minor key, played loud."
                                 -> "A fast strings piece in a minor key, played loud. [AUD0]..[AUD7]"
    edit_{train,test}.json       a clip + an edit ("Make it faster.", "Play it on a trumpet.") -> the edited
                                 music: the clip's facts with one changed, as a caption + [AUD0]..[AUD7]
    requests_test.json           the held-out requests with their facts, for `check_generation`
    generate_test.jsonl          the held-out text requests for ModelEvaluations/generate_mumu.py, each with a
                                 held-out clip of the same facts (or instrument and tempo) as its reference

    questions_{train,test}.json  questions about a clip phrased freely ("is this fast?", "what's playing here"),
                                 answered in text: they teach that a question makes no music

and, by `make_picture_requests`, beside the pictures of `synthetic_mumu.make_mumu_dataset` (its held-out share):

    pictures_{train,test}.json   a picture + a request for music that fits it -> the music its colour stands for
                                 (synthetic_mumu.COLOUR_MUSIC) + [AUD0]..[AUD7]; a picture + a question about
                                 it -> "A red picture." (its colour: the demo ViT does not tell shapes apart)

Questions about music also come from the set's own train.json (MusicQA records, audio -> text). A share
`templated` of the requests and edits use the fixed templates below; the rest are phrased freely
(phrasings.py). Every music answer's caption is one the note-event decoder (decoders/notes.py) was
trained to read.
"""

import json
import random
from pathlib import Path

from . import phrasings
from .synthetic import ANSWERS, FAMILIES, LOUDNESS, MODES, TEMPI
from .synthetic_mumu import COLOUR_FACTS, DESCRIBE_IMAGE, IMAGE_TO_MUSIC

# Words a request may use for each instrument family (the answers name the family).
INSTRUMENT_WORDS = {"piano": ["piano"], "organ": ["organ"], "guitar": ["guitar"],
                    "strings": ["violin", "cello", "strings"], "brass": ["trumpet", "trombone", "brass"],
                    "saxophone": ["saxophone", "sax"], "flute": ["flute", "piccolo"]}
GENERATE = ["Compose a {tempo} {word} piece in a {mode} key, played {loudness}.",
            "Generate {tempo} {mode} music for {word}, {loudness}.",
            "Play something {tempo} and {loudness} on the {word}, in {mode}.",
            "I would like a {loudness} {mode} tune on {word} at a {tempo} tempo.",
            "Make a {tempo} song for {word}."]  # the rest is the model's choice
EDITS = {"tempo": {"fast": ["Make it faster.", "Speed it up."], "slow": ["Make it slower.", "Slow it down."]},
         "loudness": {"loud": ["Make it louder."], "quiet": ["Make it quieter.", "Play it softly."]},
         "mode": {"major": ["Put it in a major key."], "minor": ["Put it in a minor key."]},
         "instrument": {f: [f"Play it on the {w}." for w in words] for f, words in INSTRUMENT_WORDS.items()}}
CAPTION = ANSWERS["caption"][0]  # "A {tempo} {instrument} piece in a {mode} key, played {loudness}."


def caption(facts: dict) -> str:
    return CAPTION.format(**facts)


def music_record(file: str, modality: str, request: str, facts: dict) -> dict:
    text = caption(facts)
    return {"input_file": file, "output_file": "", "conversation": [
        {"from": "human", "value": request, "input_modality": modality},
        {"from": "gpt", "value": text, "caption": text, "output_modality": "audio"}]}


def random_request(rng: random.Random, templated: float = 1.0) -> tuple[str, dict]:
    """(request, the facts of the music answered): with probability `templated` a fixed template, else a free
    phrasing naming each fact or leaving it to the model (then the answer's value is drawn)."""
    facts = {"instrument": rng.choice(sorted(FAMILIES)), "tempo": rng.choice(sorted(TEMPI)),
             "mode": rng.choice(sorted(MODES)), "loudness": rng.choice(sorted(LOUDNESS))}
    if rng.random() < templated:
        word = rng.choice(INSTRUMENT_WORDS[facts["instrument"]])
        return rng.choice(GENERATE).format(word=word, **facts), facts
    named = {k: v for k, v in facts.items() if rng.random() < {"instrument": 0.9, "tempo": 0.8}.get(k, 0.5)}
    return phrasings.request_phrase(named, rng), facts


def random_edit(clip_facts: dict, rng: random.Random, templated: float = 1.0) -> tuple[str, str, dict]:
    """(attribute, instruction, facts after the edit): one attribute set to another value, the instruction a
    fixed template with probability `templated`, else a free phrasing."""
    attribute = rng.choices(sorted(EDITS), weights=[phrasings.EDIT_WEIGHTS[a] for a in sorted(EDITS)])[0]
    value = rng.choice([v for v in sorted(EDITS[attribute]) if v != clip_facts[attribute]])
    facts = {k: clip_facts[k] for k in ("instrument", "tempo", "mode", "loudness")} | {attribute: value}
    if rng.random() < templated:
        return attribute, rng.choice(EDITS[attribute][value]), facts
    return attribute, phrasings.edit_phrase(attribute, value, rng), facts


def question_record(name: str, facts: dict, rng: random.Random) -> dict:
    """A freely phrased question about clip `name`, answered in text as the set's own answers are."""
    kind = rng.choice(sorted(phrasings.QUESTION_WORDS))
    return {"audio_name": name, "kind": kind, "conversation": [
        {"from": "human", "value": phrasings.question_phrase(kind, rng)},
        {"from": "gpt", "value": rng.choice(ANSWERS[kind]).format(**facts)}]}


def make_request_dataset(music, requests: int = 3000, edits_per_clip: int = 2, test_requests: int = 100,
                         seed: int = 0, templated: float = 1.0, questions_per_clip: int = 0) -> dict:
    """Write the records into the music folder `music` (beside its audios/); returns counts. The test
    edits use the set's held-out clips; the test text requests are drawn apart from the training ones.
    `templated`: the share of requests and edits from the fixed templates (the rest phrased freely);
    `questions_per_clip`: freely phrased questions per clip."""
    music = Path(music)
    rng = random.Random(seed)
    clip_facts = json.loads((music / "facts.json").read_text())
    clips = sorted(clip_facts)
    held = round(len(clips) * 0.2)  # synthetic.make_dataset's held-out share
    generate = {"train": [], "test": []}
    tests = []
    for i in range(requests + test_requests):
        request, facts = random_request(rng, templated)
        split = "test" if i < test_requests else "train"
        generate[split].append(music_record("", "text", request, facts))
        if split == "test":
            tests.append({"kind": "generate", "prompt": request, "facts": facts})
    edit = {"train": [], "test": []}
    for n, name in enumerate(clips):
        split = "test" if n < held else "train"
        for _ in range(edits_per_clip):
            attribute, instruction, facts = random_edit(clip_facts[name], rng, templated)
            edit[split].append(music_record(f"audios/{name}", "audio", instruction, facts))
            if split == "test":
                tests.append({"kind": f"edit_{attribute}", "prompt": instruction, "input_file": f"audios/{name}",
                              "input_facts": clip_facts[name], "facts": facts})
    references = []  # the held-out text requests in generate_mumu.py's schema, each with a held-out clip of its facts
    for i, test in enumerate(t for t in tests if t["kind"] == "generate"):
        same = [n for n in clips[:held] if all(clip_facts[n][k] == v for k, v in test["facts"].items())]
        near = [n for n in clips[:held] if all(clip_facts[n][k] == test["facts"][k] for k in ("instrument", "tempo"))]
        line = {"id": f"{i:04d}", "prompt": test["prompt"], "seconds": 3.0}
        if same or near:
            line["reference"] = f"audios/{(same or near)[0]}"
        references.append(json.dumps(line))
    (music / "generate_test.jsonl").write_text("\n".join(references) + "\n")
    questions = {"train": [], "test": []}
    for n, name in enumerate(clips):
        for _ in range(questions_per_clip):
            questions["test" if n < held else "train"].append(question_record(name, clip_facts[name], rng))
    for split in ("train", "test"):
        (music / f"generate_{split}.json").write_text(json.dumps(generate[split], indent=1))
        (music / f"edit_{split}.json").write_text(json.dumps(edit[split], indent=1))
        (music / f"questions_{split}.json").write_text(json.dumps(questions[split], indent=1))
    (music / "requests_test.json").write_text(json.dumps(tests, indent=1))
    return {k: len(v) for k, v in (("generate_train", generate["train"]), ("edit_train", edit["train"]),
                                   ("questions_train", questions["train"]), ("requests_test", tests))}


def make_picture_requests(pictures, seed: int = 0, templated: float = 0.3, test_fraction: float = 0.25) -> dict:
    """Write pictures_{train,test}.json into `pictures` (a folder of synthetic_mumu.make_mumu_dataset, whose first
    `test_fraction` of images are held out): per picture a request for music that fits it and a question about
    it, a `templated` share in the stage records' fixed wording ("Compose music for this image.", "Describe the
    image."). Returns counts."""
    pictures = Path(pictures)
    rng = random.Random(seed)
    facts = json.loads((pictures / "images.json").read_text())
    names = sorted(facts)
    held = round(len(names) * test_fraction)
    out = {"train": [], "test": []}
    for n, name in enumerate(names):
        colour = facts[name]["colour"]
        fixed = rng.random() < templated
        request = IMAGE_TO_MUSIC if fixed else phrasings.picture_phrase(rng, request=True)
        question = DESCRIBE_IMAGE if fixed else phrasings.picture_phrase(rng, request=False)
        split = "test" if n < held else "train"
        out[split].append(music_record(f"images/{name}", "image", request, COLOUR_FACTS[colour]))
        out[split].append({"input_file": f"images/{name}", "output_file": "", "conversation": [
            {"from": "human", "value": question, "input_modality": "image"},
            {"from": "gpt", "value": f"A {colour} picture.", "output_modality": "text"}]})
    for split, records in out.items():
        (pictures / f"pictures_{split}.json").write_text(json.dumps(records, indent=1))
    return {f"pictures_{split}": len(records) for split, records in out.items()}
