"""Requests, edits and questions phrased the many ways people write them, for the demo MuMu-LLaMA's training.

Each phrase is composed from independent slots: an opener ("could you", "make me", nothing), a verb, the
facts in any order and in any of their words (tempo: "fast", "upbeat", "brisk"...; mood for the key:
"sad" is minor, "cheerful" major; loudness: "soft", "booming"...), and a form: a statement, a question,
lower case, no full stop, "please". An edit refers to the clip as "it", "this", "the clip"... Facts a
request leaves out are the model's choice. The held-out set (demo/mumu/heldout_requests.json) is written
by hand in phrasings these slots do not produce (tests check that none of it is generated here). Pictures
(the demo's images) get requests for music that fits them and questions about them.
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
                           "replace the instrument in {r} with a {w}", "try {r} with a {w}", "give {r} to the {w}",
                           "let the {w} play {r}", "i'd rather hear {r} on {w}", "move {r} over to {w}",
                           "arrange {r} for {w}", "{w} instead", "do {r} on {w} instead", "now on the {w}",
                           "a {w} version of {r}", "swap the instrument of {r} for a {w}", "can {r} be on {w}",
                           "{w} this time", "rewrite {r} for {w}", "the same, played by a {w}",
                           "could a {w} play {r} instead", "what would {r} sound like on {w}? play it",
                           "how about {r} on the {w}", "can we hear {r} on a {w}", "what about a {w} for {r}"],
}
# How often an edit changes each attribute: the instrument a little more, as it is the hardest to hear changed
# (at 0.4 the model learnt to ignore the clip's instrument: questions about it fell from 75 % to 35 % right).
EDIT_WEIGHTS = {"instrument": 0.3, "tempo": 0.7 / 3, "loudness": 0.7 / 3, "mode": 0.7 / 3}
EDIT_OPENERS = ["", "please ", "could you ", "can you ", "now ", "ok, ", "hmm, ", "i want you to "]

QUESTION_WORDS = {
    "instrument": ["what instrument is this", "which instrument is playing", "what's playing here",
                   "what instrument do you hear", "which instrument am i hearing", "name the instrument",
                   "what is the instrument in {r}", "do i hear a {w} in {r}", "is {r} played on a {w}",
                   "does {r} have a {w} in it", "{w} or {w2}", "is it a {w} or a {w2}", "what plays in {r}",
                   "tell me the instrument", "guess the instrument"],
    "tempo": ["is {r} fast or slow", "how fast is {r}", "what's the tempo of {r}", "is {r} slow",
              "is {r} quick", "how would you describe the tempo of {r}", "do you think {r} is {t}",
              "does {r} feel {t}", "what pace is {r}", "how quick is {r}"],
    "mode": ["is {r} major or minor", "what key is {r} in", "is {r} happy or sad", "does {r} sound sad",
             "is {r} in a minor key", "does {r} feel {m}", "what mood is {r}", "is the mood of {r} {m}"],
    "loudness": ["is {r} loud", "how loud is {r}", "is {r} soft or loud", "is {r} quiet", "what's the volume of {r}",
                 "is {r} {l}"],
    "caption": ["describe {r}", "tell me about {r}", "what does {r} sound like", "how would you describe {r}",
                "what can you hear in {r}", "give me a description of {r}", "give me a short summary of {r}",
                "what's going on in {r}", "what is {r}", "any thoughts on {r}", "caption {r}",
                "what style is {r}"],
}
QUESTION_OPENERS = ["", "", "", "so, ", "hey, ", "quick question: ", "ok, ", "tell me, "]

# The demo's pictures: requests for music that fits one, and questions about one.
PICTURES = ["this image", "this picture", "the image", "the picture", "this photo", "my picture", "this drawing",
            "it", "this"]
PICTURE_REQUESTS = ["compose music for {p}", "make a song that fits {p}", "write music inspired by {p}",
                    "turn {p} into music", "score {p}", "play something that matches {p}",
                    "give me a soundtrack for {p}", "make music that sounds like {p}", "create a tune for {p}",
                    "generate music for {p}", "write a piece about {p}", "play {p} as music",
                    "what would {p} sound like as music", "can you make music from {p}"]
PICTURE_QUESTIONS = ["describe {p}", "what is in {p}", "what do you see in {p}", "what colour is {p}",
                     "what shape is in {p}", "tell me about {p}", "what does {p} show", "what is drawn in {p}",
                     "which colour do you see", "what can you see"]


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
    w, w2 = rng.sample([w for words in INSTRUMENT_WORDS.values() for w in words], 2)
    words = {k: rng.choice([w for values in FACT_WORDS[name].values() for w in values])
             for k, name in (("t", "tempo"), ("m", "mode"), ("l", "loudness"))}
    text = rng.choice(QUESTION_WORDS[kind]).format(r=rng.choice(REFERENTS), w=w, w2=w2, **words)
    question = text.split()[0] not in ("name", "tell", "guess", "describe", "give", "caption")
    return finish(rng.choice(QUESTION_OPENERS) + text, rng, question=question)


def picture_phrase(rng: random.Random, request: bool) -> str:
    """A request for music that fits the picture given (`request`), or a question about it."""
    text = rng.choice(PICTURE_REQUESTS if request else PICTURE_QUESTIONS).format(p=rng.choice(PICTURES))
    opener = rng.choice(OPENERS) if request and not text.startswith(("what", "can")) else ""
    return finish(opener + text, rng, question=text.startswith(("what", "which", "can")) or opener in (
        "could you ", "can you ", "would you "))
