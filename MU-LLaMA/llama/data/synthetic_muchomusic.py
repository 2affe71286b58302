"""A MuChoMusic-format benchmark built from the synthetic music set (synthetic.py), with known answers: the
offline proof that ModelEvaluations/muchomusic.py measures listening.

The files are the benchmark's in all but size and content: `muchomusic.csv` with its columns, half the clips as
MusicCaps (`musiccaps/musiccaps-public.csv`, `musiccaps/audio/[ytid]-[start-end].wav`, 48 kHz stereo) and half
as Song Describer tracks (`sdd/song_describer.csv`, `sdd/audio/NN/ID.2min.mp3`, 44.1 kHz stereo MP3).
`vanished` MusicCaps clips keep their table rows but have no file, as YouTube clips that no longer exist.

Every question has four live options, each the right answer to some questions (chance 25 %):
- instrument: the lead instrument's family among four of the seven (knowledge: instrumentation);
- tempo and dynamics: slow or fast crossed with quiet or loud (knowledge: metre and rhythm, performance);
- mood: the same two facts as a mood (reasoning: mood and expression).
Distractor 1 is the nearest wrong answer (one fact wrong), as the benchmark's "incorrect but related".
"""

import csv
import json
import random
import string
from pathlib import Path

import numpy as np
import soundfile

from .synthetic import FAMILIES, Renderer, compose, random_facts

PAIRS = [("slow", "quiet"), ("slow", "loud"), ("fast", "quiet"), ("fast", "loud")]
MOODS = {("slow", "quiet"): "Calm and gentle", ("slow", "loud"): "Solemn and powerful",
         ("fast", "quiet"): "Light and playful", ("fast", "loud"): "Energetic and intense"}
KINDS = {
    "instrument": ("Which instrument plays the lead in this piece?", ["instrumentation"], []),
    "tempo_dynamics": ("How would you describe the tempo and the dynamics?", ["metre and rhythm", "performance"], []),
    "mood": ("What mood does the music convey?", [], ["mood and expression"]),
}
GENRES = ("Classical", "Jazz", "Pop")
MUSICCAPS_RATE, SDD_RATE = 48000, 44100
QUESTION_COLUMNS = ["question", "correct_answer", "distractor_1_answer", "distractor_2_answer", "distractor_3_answer",
                    "dataset", "dataset_identifier", "num_annotations", "correct", "distractor1", "distractor2",
                    "distractor3", "odd_question", "genre", "music_knowledge", "music_reasoning"]
MUSICCAPS_COLUMNS = ["ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption", "author_id",
                     "is_balanced_subset", "is_audioset_eval"]
SDD_COLUMNS = ["caption_id", "track_id", "caption", "is_valid_subset", "familiarity", "artist_id", "album_id", "path",
               "duration"]


def answers(kind: str, facts: dict, rng: random.Random) -> list[str]:
    """The correct answer, then three distractors: the nearest wrong one first."""
    if kind == "instrument":
        others = rng.sample([f for f in sorted(FAMILIES) if f != facts["instrument"]], 3)
        return [f"The {family} is playing." for family in [facts["instrument"], *others]]
    tempo, loudness = facts["tempo"], facts["loudness"]
    flip_tempo, flip_loud = ("fast" if tempo == "slow" else "slow"), ("loud" if loudness == "quiet" else "quiet")
    pairs = [(tempo, loudness), (tempo, flip_loud), (flip_tempo, loudness), (flip_tempo, flip_loud)]
    if kind == "mood":
        return [MOODS[p] for p in pairs]
    return [f"{t.capitalize()} and {loud}" for t, loud in pairs]


def _categories(names: list[str]) -> str:
    return repr(names) if names else ""  # the benchmark's CSV leaves an empty list's cell empty


def make_benchmark(out, clips: int = 150, per_clip: int = 2, seconds: float = 3.0, vanished: int = 0,
                   seed: int = 0) -> dict:
    """Write the benchmark into `out` (the layout ModelEvaluations/muchomusic.py reads under --data_root);
    returns {"questions", "clips", "vanished"} counts."""
    out = Path(out)
    rng = random.Random(seed)
    renderers = {"musiccaps": Renderer(MUSICCAPS_RATE), "sdd": Renderer(SDD_RATE)}
    questions, caps, songs, facts_of = [], [], [], {}
    gone = 0
    for i in range(clips):
        facts = random_facts(rng)
        midi = compose(facts, seconds, rng)
        dataset = "musiccaps" if i % 2 == 0 else "sdd"
        caption = f"A {facts['loudness']}, {facts['tempo']} {facts['mode']} piece led by a {facts['instrument']}."
        if dataset == "musiccaps":
            ytid = "".join(rng.choice(string.ascii_letters + string.digits + "-_") for _ in range(11))
            start = 10 * rng.randrange(30)
            caps.append([ytid, start, start + 10, "/m/04rlf", repr([facts["instrument"], f"{facts['tempo']} tempo"]),
                         caption, rng.randrange(10), "False", "False"])
            identifier, audio_id = f"{ytid}_{start}.json", ytid
            path = out / "musiccaps" / "audio" / f"[{ytid}]-[{start}-{start + 10}].wav"
            if gone < vanished:
                gone, path = gone + 1, None
        else:
            track = rng.randrange(100000, 1000000)
            relative = f"{track % 100:02d}/{track}.mp3"
            songs.append([len(songs), track, caption, "True", rng.randrange(3), rng.randrange(1000),
                          rng.randrange(1000), relative, 120.0])
            identifier, audio_id = f"{track}.json", str(track)
            path = out / "sdd" / "audio" / relative.replace(".mp3", ".2min.mp3")
        facts_of[audio_id] = {k: facts[k] for k in ("instrument", "tempo", "loudness", "mode", "bpm")}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            wave = renderers[dataset](midi, seconds)
            soundfile.write(path, np.stack([wave, wave], axis=1), renderers[dataset].sample_rate,
                            format="WAV" if dataset == "musiccaps" else "MP3")
        genre = rng.choice(GENRES)
        for kind in rng.sample(sorted(KINDS), k=per_clip):
            text, knowledge, reasoning = KINDS[kind]
            correct, *distractors = answers(kind, facts, rng)
            questions.append([text, correct, *distractors, dataset, identifier, 3, 1.0, 0.0, 0.0, 0.0, 0.0, genre,
                              _categories(knowledge), _categories(reasoning)])
    for path, columns, rows in ((out / "muchomusic.csv", QUESTION_COLUMNS, questions),
                                (out / "musiccaps" / "musiccaps-public.csv", MUSICCAPS_COLUMNS, caps),
                                (out / "sdd" / "song_describer.csv", SDD_COLUMNS, songs)):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(rows)
    (out / "facts.json").write_text(json.dumps(facts_of, indent=1))
    return {"questions": len(questions), "clips": clips, "vanished": gone}
