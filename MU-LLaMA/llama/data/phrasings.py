"""Requests, edits and questions phrased the many ways people write them, for the demo MuMu-LLaMA's training.

Each phrase is composed from independent slots: an opener ("could you", "make me", nothing), a verb, the
facts in any order and in any of their words (tempo: "fast", "upbeat", "brisk"...; mood for the key:
"sad" is minor, "cheerful" major; loudness: "soft", "booming"...), and a form: a statement, a question,
lower case, no full stop, "please". An edit refers to the clip as "it", "this", "the clip"... Facts a
request leaves out are the model's choice. The held-out set (tests/data/demo_phrasings.json) is written
by hand in phrasings these slots do not produce (tests check that none of it is generated here).
"""

import random

INSTRUMENT_WORDS = {"piano": ["piano", "keys", "grand piano"], "organ": ["organ", "church organ", "pipe organ"],
                    "guitar": ["guitar", "acoustic guitar", "nylon guitar"],
                    "strings": ["violin", "cello", "strings", "viola", "string section"],
                    "brass": ["trumpet", "trombone", "brass", "horns"],
                    "saxophone": ["saxophone", "sax", "tenor sax", "alto sax"],
                    "flute": ["flute", "piccolo", "recorder"]}
FACT_WORDS = {
    "tempo": {"fast": ["fast", "quick", "upbeat", "lively", "brisk", "up-tempo", "speedy", "rapid", "fast-paced"],
              "slow": ["slow", "leisurely", "unhurried", "slow-paced", "laid-back", "relaxed", "slow-moving"]},
    "mode": {"major": ["major", "happy", "cheerful", "bright", "joyful", "uplifting", "sunny"],
             "minor": ["minor", "sad", "dark", "melancholic", "gloomy", "somber", "mournful"]},
    "loudness": {"loud": ["loud", "powerful", "forceful", "booming", "bold", "strong"],
                 "quiet": ["quiet", "soft", "gentle", "hushed", "delicate", "subdued"]},
}
OPENERS = ["", "please ", "could you ", "can you ", "would you ", "i'd like you to ", "i want you to ", "hey, ",
           "go ahead and ", "kindly ", "now "]
VERBS = ["compose", "write", "make", "create", "generate", "produce", "play", "give me", "make me", "write me",
         "play me", "come up with", "put together", "record"]
NOUNS = ["piece", "tune", "song", "track", "melody", "music", "instrumental", "composition", "number", "theme"]
INSTRUMENT_FORMS = ["for {w}", "on {w}", "on the {w}", "with {w}", "with a {w}", "featuring {w}", "played on {w}",
                    "using a {w}", "{w}"]  # "{w}" stands before the noun
QUESTION_FORMS = ["can i get {a}", "could i have {a}", "how about {a}", "what about {a}", "can you do {a}",
                  "would you make {a}", "do you have {a}"]
WANT_FORMS = ["i want {a}", "i need {a}", "i'd like {a}", "i would love {a}", "give me {a}", "let's have {a}",
              "{a}, please", "{a}"]

REFERENTS = ["it", "this", "the clip", "this clip", "the music", "this song", "the track", "this piece", "the tune"]
EDIT_FORMS = {
    ("tempo", "fast"): ["make {r} faster", "speed {r} up", "make {r} quicker", "play {r} faster",
                        "make {r} more upbeat", "pick up the pace of {r}", "a faster version of {r}", "{r}, but faster",
                        "make {r} lively"],
    ("tempo", "slow"): ["make {r} slower", "slow {r} down", "play {r} slower", "take {r} slower",
                        "a slower version of {r}", "{r}, but slower", "make {r} more relaxed",
                        "bring the tempo of {r} down"],
    ("loudness", "loud"): ["make {r} louder", "turn {r} up", "play {r} loud", "make {r} more powerful",
                           "{r}, but louder", "a louder version of {r}", "crank {r} up"],
    ("loudness", "quiet"): ["make {r} quieter", "turn {r} down", "play {r} softly", "make {r} softer",
                            "make {r} gentler", "{r}, but quieter", "a softer version of {r}"],
    ("mode", "major"): ["put {r} in a major key", "make {r} happier", "make {r} sound brighter", "change {r} to major",
                        "make {r} more cheerful", "{r}, but in major", "a happier version of {r}"],
    ("mode", "minor"): ["put {r} in a minor key", "make {r} sadder", "make {r} sound darker", "change {r} to minor",
                        "make {r} more melancholic", "{r}, but in minor", "a sadder version of {r}"],
    ("instrument", None): ["play {r} on the {w}", "play {r} on {w}", "use a {w} for {r}", "switch {r} to {w}",
                           "make {r} a {w} piece", "have a {w} play {r}", "{r}, but on {w}", "redo {r} with {w}",
                           "replace the instrument in {r} with a {w}", "try {r} with a {w}", "give {r} to the {w}"],
}
EDIT_OPENERS = ["", "please ", "could you ", "can you ", "now ", "ok, ", "hmm, ", "i want you to "]

QUESTION_WORDS = {
    "instrument": ["what instrument is this", "which instrument is playing", "what's playing here",
                   "what instrument do you hear", "which instrument am i hearing", "name the instrument",
                   "what is the instrument in {r}"],
    "tempo": ["is {r} fast or slow", "how fast is {r}", "what's the tempo of {r}", "is {r} slow",
              "is {r} quick", "how would you describe the tempo of {r}"],
    "mode": ["is {r} major or minor", "what key is {r} in", "is {r} happy or sad", "does {r} sound sad",
             "is {r} in a minor key"],
    "loudness": ["is {r} loud", "how loud is {r}", "is {r} soft or loud", "is {r} quiet"],
    "caption": ["describe {r}", "tell me about {r}", "what does {r} sound like", "how would you describe {r}",
                "what can you hear in {r}", "give me a description of {r}"],
}


def finish(text: str, rng: random.Random, question: bool = False) -> str:
    """The form: capitalised or lower case, the end mark or none, sometimes "please"."""
    if rng.random() < 0.15:
        text += rng.choice([" please", ", please", " thanks", " for me"])
    end = rng.choice(["?", "?", ""] if question else [".", ".", "!", ""])
    text = text.strip() + end
    return text[0].upper() + text[1:] if rng.random() < 0.6 else text


def describe(facts: dict, rng: random.Random) -> str:
    """A noun phrase naming some of the facts, in any order and words: "a brisk, sad cello tune"."""
    adjectives = [rng.choice(FACT_WORDS[k][facts[k]]) for k in ("tempo", "mode", "loudness") if k in facts]
    rng.shuffle(adjectives)
    noun = rng.choice(NOUNS)
    tail = []
    if "instrument" in facts:
        word = rng.choice(INSTRUMENT_WORDS[facts["instrument"]])
        form = rng.choice(INSTRUMENT_FORMS)
        if form == "{w}":
            noun = f"{word} {noun}"
        else:
            tail.append(form.format(w=word))
    if "mode" in facts and rng.random() < 0.2:
        tail.append(f"in a {facts['mode']} key")
    joiner = rng.choice([" ", ", "]) if len(adjectives) > 1 else " "
    phrase = joiner.join(adjectives) + " " + noun if adjectives else noun
    article = "an" if phrase[0] in "aeiou" else "a"
    if noun.startswith("music") or rng.random() < 0.1:
        article = "some"
    return f"{article} {phrase} {' '.join(tail)}".strip()


def request_phrase(facts: dict, rng: random.Random) -> str:
    """A request for music with these facts (a dict of instrument, tempo, mode, loudness; any may be absent)."""
    thing = describe(facts, rng)
    kind = rng.random()
    if kind < 0.5:
        return finish(f"{rng.choice(OPENERS)}{rng.choice(VERBS)} {thing}", rng, question=rng.random() < 0.3)
    if kind < 0.75:
        return finish(rng.choice(QUESTION_FORMS).format(a=thing), rng, question=True)
    return finish(rng.choice(WANT_FORMS).format(a=thing), rng)


def edit_phrase(attribute: str, value: str, rng: random.Random) -> str:
    """An edit setting one attribute of the clip to `value` (instrument: a family)."""
    referent = rng.choice(REFERENTS)
    if attribute == "instrument":
        text = rng.choice(EDIT_FORMS[("instrument", None)]).format(r=referent, w=rng.choice(INSTRUMENT_WORDS[value]))
    else:
        text = rng.choice(EDIT_FORMS[(attribute, value)]).format(r=referent)
    opener = rng.choice(EDIT_OPENERS)
    return finish(opener + text, rng, question=opener.strip() in ("could you", "can you"))


def question_phrase(kind: str, rng: random.Random) -> str:
    """A question about a clip of one kind (instrument, tempo, mode, loudness, caption)."""
    text = rng.choice(QUESTION_WORDS[kind]).format(r=rng.choice(REFERENTS))
    return finish(text, rng, question=text.split()[0] in ("what", "what's", "which", "is", "how", "does"))
