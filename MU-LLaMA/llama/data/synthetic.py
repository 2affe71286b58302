"""Synthetic music with known facts, rendered with real General-MIDI instrument samples.

Each clip is a short piece built with pretty_midi and rendered by tinysoundfont through the GM
soundfont shipped with pretty_midi. Known facts per clip: instrument family, tempo class, major or
minor, loudness, number of instruments. Questions and answers come in several phrasings; records
use the MusicQA schema, so the data pipeline treats them like the real dataset.

    python MU-LLaMA/data/synthetic.py --out data/synthetic --clips 400 --seconds 3 --seed 0
writes OUT/audios/*.wav, OUT/train.json and OUT/test.json (held-out clips) and OUT/facts.json.
"""

import json
import random
import re
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile

from ..audio import SAMPLE_RATE  # MERT-v1's: the synthetic clips are rendered at it

# family -> General MIDI programs (0-based) that sound like it
FAMILIES = {
    "piano": [0, 1], "organ": [16, 19], "guitar": [24, 25], "strings": [40, 48],
    "brass": [56, 61], "saxophone": [65, 66], "flute": [73, 74],
}
TEMPI = {"slow": (60, 80), "fast": (140, 170)}
MODES = {"major": [0, 4, 7], "minor": [0, 3, 7]}
LOUDNESS = {"quiet": 35, "loud": 115}

QUESTIONS = {
    "instrument": ["What instrument is playing?", "Which instrument do you hear?",
                   "Name the main instrument in this clip.", "What is the lead instrument?"],
    "tempo": ["Is the tempo slow or fast?", "How fast is this music?", "What is the tempo of the song?"],
    "mode": ["Is this in a major or a minor key?", "What is the tonality of the music?"],
    "loudness": ["Is the music loud or quiet?", "How loud is this clip?"],
    "count": ["How many instruments are playing?"],
    "caption": ["Describe the audio", "Describe the music in detail", "What do you hear in the audio?"],
}
ANSWERS = {
    "instrument": ["It is a {instrument}.", "I hear a {instrument}.", "The {instrument} is playing."],
    "tempo": ["The tempo is {tempo}.", "It is {tempo}.", "This music is {tempo}."],
    "mode": ["It is in a {mode} key.", "The music is {mode}."],
    "loudness": ["It is {loudness}.", "The music is {loudness}."],
    "count": ["{count_word} playing."],
    "caption": ["A {tempo} {instrument} piece in a {mode} key, played {loudness}.",
                "This is a {loudness}, {tempo} {mode} piece on {instrument}."],
}
COUNT_WORDS = {1: "One instrument is", 2: "Two instruments are"}
# The words an answer must use to state each fact, per class (matched as whole words, any case).
FACT_WORDS = {
    "instrument": {f: [f] for f in FAMILIES},
    "tempo": {t: [t] for t in TEMPI},
    "mode": {m: [m] for m in MODES},
    "loudness": {v: [v] for v in LOUDNESS},
    "count": {1: ["one"], 2: ["two"]},
}


def soundfont() -> str:
    return str(Path(pretty_midi.__file__).parent / "TimGM6mb.sf2")


def compose(facts: dict, seconds: float, rng: random.Random) -> pretty_midi.PrettyMIDI:
    """Chords and an arpeggio in the clip's key, at its tempo and loudness."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=facts["bpm"])
    beat = 60.0 / facts["bpm"]
    root = 48 + rng.randrange(12)
    triad = MODES[facts["mode"]]
    lead = pretty_midi.Instrument(program=facts["program"])
    steps = [0, 1, 2, 1] if rng.random() < 0.5 else [0, 1, 2, 3]
    t, i = 0.0, 0
    while t < seconds:
        degree = steps[i % len(steps)]
        pitch = root + 12 + (triad[degree % 3] + 12 * (degree // 3))
        lead.notes.append(pretty_midi.Note(facts["velocity"], pitch, t, t + beat * 0.9))
        t, i = t + beat / 2, i + 1
    midi.instruments.append(lead)
    if facts["count"] == 2:  # a sustained chord on a second instrument of another family
        pad = pretty_midi.Instrument(program=facts["second_program"])
        for note in triad:
            pad.notes.append(pretty_midi.Note(max(20, facts["velocity"] - 25), root + note, 0.0, seconds))
        midi.instruments.append(pad)
    return midi


class Renderer:
    """MIDI -> mono float32 audio with tinysoundfont (one channel per instrument). Parsing the soundfont
    takes most of a clip's time, so one renderer plays many clips: after each it silences every voice
    and resets the channels, and the next clip comes out bit for bit as from a fresh soundfont (tested)."""

    def __init__(self, sample_rate: int = SAMPLE_RATE):
        import tinysoundfont

        self.sample_rate = sample_rate
        self.synth = tinysoundfont.Synth(samplerate=sample_rate)
        self.font = self.synth.sfload(soundfont())

    def __call__(self, midi: pretty_midi.PrettyMIDI, seconds: float) -> np.ndarray:
        synth, events = self.synth, []
        for channel, instrument in enumerate(midi.instruments):
            synth.program_select(channel, self.font, 0, instrument.program)
            for note in instrument.notes:
                events.append((note.start, 1, channel, note.pitch, note.velocity))
                events.append((note.end, 0, channel, note.pitch, 0))
        events.sort()
        total = int(seconds * self.sample_rate)
        out, done = [], 0
        for time, is_on, channel, pitch, velocity in events:
            until = min(int(time * self.sample_rate), total)
            if until > done:
                out.append(np.frombuffer(synth.generate(until - done), dtype=np.float32))
                done = until
            if is_on:
                synth.noteon(channel, pitch, velocity)
            else:
                synth.noteoff(channel, pitch)
        if done < total:
            out.append(np.frombuffer(synth.generate(total - done), dtype=np.float32))
        # Back to a fresh soundfont's state: every voice stopped (a zero release, played out) and the
        # channels reset, so that no tail of this clip sounds in the next one.
        synth.sounds_off()
        synth.generate(self.sample_rate)
        synth.soundfonts[self.font].reset()
        stereo = np.concatenate(out).reshape(-1, 2)
        return stereo.mean(axis=1).astype(np.float32)


def render(midi: pretty_midi.PrettyMIDI, seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """One clip: MIDI -> mono float32 audio (a Renderer for many)."""
    return Renderer(sample_rate)(midi, seconds)


def random_facts(rng: random.Random) -> dict:
    family = rng.choice(sorted(FAMILIES))
    tempo = rng.choice(sorted(TEMPI))
    loudness = rng.choice(sorted(LOUDNESS))
    count = rng.choice([1, 2])
    second = rng.choice([f for f in sorted(FAMILIES) if f != family])
    return {"instrument": family, "program": rng.choice(FAMILIES[family]), "tempo": tempo,
            "bpm": rng.randint(*TEMPI[tempo]), "mode": rng.choice(sorted(MODES)), "loudness": loudness,
            "velocity": LOUDNESS[loudness], "count": count, "count_word": COUNT_WORDS[count],
            "second_program": rng.choice(FAMILIES[second])}


def qa_records(name: str, facts: dict, rng: random.Random, per_clip: int) -> list[dict]:
    kinds = rng.sample(sorted(QUESTIONS), k=min(per_clip, len(QUESTIONS)))
    records = []
    for kind in kinds:
        question = rng.choice(QUESTIONS[kind])
        answer = rng.choice(ANSWERS[kind]).format(**facts)
        records.append({"audio_name": name, "conversation": [{"from": "human", "value": question},
                                                             {"from": "gpt", "value": answer}], "kind": kind})
    return records


def class_indices(facts: dict, names: list[str], kinds) -> dict[str, list[int]]:
    """Per fact kind, each named clip's class as an index into that kind's sorted classes (for training heads)."""
    classes = {k: sorted({f[k] for f in facts.values()}) for k in kinds}
    return {k: [classes[k].index(facts[n][k]) for n in names] for k in kinds}


def stated_class(kind: str, answer: str):
    """The class of `kind` that `answer` states, or None when it names none or several."""
    words = set(re.findall(r"[a-z]+", answer.lower()))
    named = [c for c, keys in FACT_WORDS[kind].items() if words & set(keys)]
    return named[0] if len(named) == 1 else None


def fact_accuracy(records: list[dict], answers: list[str], facts: dict) -> dict:
    """Per question kind: {"n", "correct", "accuracy", "chance"} of answers to `records` (this module's
    records, with their "kind"). An answer is right when it states the clip's class and no other."""
    table = {}
    for record, answer in zip(records, answers, strict=True):
        kind = record["kind"]
        if kind not in FACT_WORDS:
            continue
        row = table.setdefault(kind, {"n": 0, "correct": 0, "chance": 1 / len(FACT_WORDS[kind])})
        row["n"] += 1
        row["correct"] += stated_class(kind, answer) == facts[record["audio_name"]][kind]
    for row in table.values():
        row["accuracy"] = row["correct"] / row["n"]
    return {kind: table[kind] for kind in FACT_WORDS if kind in table}


def evaluate(model, folder, kinds=None, limit: int | None = None, shuffle_seed: int | None = None,
             batch_size: int = 32, max_new_tokens: int = 24) -> tuple[dict, list[str]]:
    """Greedy answers of `model` (a llama.Pipeline) to the held-out questions of a set written by
    `make_dataset`, scored by `fact_accuracy`. With `shuffle_seed`, each question is
    answered with another clip's audio (a seeded derangement of the clips): the control that shows
    whether the answers come from the music."""
    from llama import load_audio

    from .dataset import derangement

    folder = Path(folder)
    records = [r for r in json.loads((folder / "test.json").read_text()) if kinds is None or r["kind"] in kinds]
    records = records[:limit]
    facts = json.loads((folder / "facts.json").read_text())
    names = sorted({r["audio_name"] for r in records})
    heard = dict(zip(names, names, strict=True))
    if shuffle_seed is not None:
        heard = {name: names[j] for name, j in zip(names, derangement(len(names), shuffle_seed), strict=True)}
    clips = {name: load_audio(folder / "audios" / name, model.sample_rate) for name in names}
    answers = []
    for start in range(0, len(records), batch_size):
        part = records[start:start + batch_size]
        answers += model.answer([clips[heard[r["audio_name"]]] for r in part],
                                [r["conversation"][0]["value"] for r in part], max_new_tokens=max_new_tokens)
    return fact_accuracy(records, answers, facts), answers


def compare(model, folder, kinds=None, limit: int | None = None, shuffle_seed: int = 0,
            max_new_tokens: int = 24) -> dict:
    """`evaluate` with each clip's own audio and with shuffled audio: {"own_audio", "shuffled_audio"}."""
    own, _ = evaluate(model, folder, kinds, limit, max_new_tokens=max_new_tokens)
    shuffled, _ = evaluate(model, folder, kinds, limit, shuffle_seed=shuffle_seed, max_new_tokens=max_new_tokens)
    return {"own_audio": own, "shuffled_audio": shuffled}


def markdown_table(comparison: dict) -> str:
    lines = ["| question | n | accuracy | with shuffled audio | chance |", "|---|---|---|---|---|"]
    for kind, row in comparison["own_audio"].items():
        lines.append(f"| {kind} | {row['n']} | {row['accuracy']:.1%} "
                     f"| {comparison['shuffled_audio'][kind]['accuracy']:.1%} | {row['chance']:.1%} |")
    return "\n".join(lines)


def make_dataset(out, clips: int = 400, seconds: float = 3.0, test_fraction: float = 0.2, seed: int = 0,
                 per_clip: int = 4) -> dict:
    """Render `clips` clips into out/audios and write train/test MusicQA JSON (split by clip)."""
    out = Path(out)
    (out / "audios").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    facts, train, test = {}, [], []
    n_test = round(clips * test_fraction)
    renderer = Renderer()
    for i in range(clips):
        name = f"{i:06d}.wav"
        clip_facts = random_facts(rng)
        path = out / "audios" / name
        midi = compose(clip_facts, seconds, rng)  # always: composing draws from rng, so the next clips' facts
        if not path.exists():                     # stay those of a first run when files are reused
            soundfile.write(path, renderer(midi, seconds), SAMPLE_RATE)
        facts[name] = {k: clip_facts[k] for k in ("instrument", "tempo", "mode", "loudness", "count", "bpm")}
        (test if i < n_test else train).extend(qa_records(name, clip_facts, rng, per_clip))
    for split, records in (("train", train), ("test", test)):
        (out / f"{split}.json").write_text(json.dumps(records, indent=1))
    (out / "facts.json").write_text(json.dumps(facts, indent=1))
    return facts
