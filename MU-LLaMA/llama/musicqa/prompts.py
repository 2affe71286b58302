"""What MusicQA asks the LLM and how its replies are read: the 4 fixed questions, the 5 open pairs, the
"list" and "item" prompts (annotate.py), and lenient parsers that accept numbering styles, extra text and
markdown but return None for a reply that does not hold what was asked."""

import re

FIXED_QUESTIONS = ["Describe the audio", "Describe the audio in detail", "What do you hear in the audio?",
                   "What can be inferred from the audio?"]
OPEN_PAIRS = 5

FIXED_INSTRUCTIONS = (
    "You will be given the {kind} of a piece of music. You cannot listen to it: rely only on the {kind}. "
    "Answer these four questions about the music in full sentences. Start each answer on a new line with "
    "its number, like '1. The music is ...'.\n"
    + "\n".join(f"{i}. {q}" for i, q in enumerate(FIXED_QUESTIONS, 1))
)
OPEN_INSTRUCTIONS = (
    "You will be given the {kind} of a piece of music. You cannot listen to it: rely only on the {kind}. "
    "Write five different questions that a listener could ask about this music, for example about its "
    "tempo, mood, instruments, genre or where it could be played, and answer each one in one to three "
    "sentences. Use exactly this layout for each of the five:\n"
    "1. <question>\nAnswer: <answer>"
)
ITEM_ANSWER = "Here is the {kind} of a piece of music: {description}\n\nBased only on it, answer in one or two " \
    "sentences: {question}"
ITEM_QUESTION = "Here is the {kind} of a piece of music: {description}\n\nWrite one question that a listener " \
    "could ask about the {aspect} of this music."
ASPECTS = ["tempo", "mood", "instruments", "genre", "possible uses"]
KIND_NAMES = {"caption": "description", "tags": "list of tags"}
PROMPTING = ("list", "item")

_NUMBERED = re.compile(r"^\s*[*#>_\s]*(?:Q(?:uestion)?\s*)?(\d+)\s*[.):\-]\s*[*_]*\s*(.*)$", re.IGNORECASE)
_ANSWER = re.compile(r"^\s*[*_]*\s*(?:answer|a)\s*[*_]*\s*[:.\-]\s*[*_]*\s*(.*)$", re.IGNORECASE)
_QUESTION_LABEL = re.compile(r"^\s*(?:question|q)\s*[:.\-]\s*", re.IGNORECASE)


def conversation(instructions: str, clip) -> list[dict]:
    kind = KIND_NAMES[clip.kind]
    return [{"role": "system", "content": instructions.format(kind=kind)},
            {"role": "user", "content": f"The {kind}: {clip.description}"}]


def item_request(template: str, clip, **fields) -> list[dict]:
    content = template.format(kind=KIND_NAMES[clip.kind], description=clip.description, **fields)
    return [{"role": "user", "content": content}]


def numbered_blocks(text: str) -> dict[int, str]:
    """{number: text} of the numbered items in `text`, each with its continuation lines; the first
    occurrence of a number wins (models sometimes restate the list)."""
    blocks: dict[int, list[str]] = {}
    current = None
    for line in text.splitlines():
        match = _NUMBERED.match(line)
        if match and int(match.group(1)) not in blocks:
            current = int(match.group(1))
            blocks[current] = [match.group(2)]
        elif current is not None:
            blocks[current].append(line)
    return {n: "\n".join(lines).strip() for n, lines in blocks.items()}


def clean(text: str) -> str:
    return " ".join(text.replace("**", "").split()).strip(" *_")


def parse_fixed(text: str) -> list[str] | None:
    """The 4 answers of the fixed questions, or None when one is missing or empty."""
    blocks = numbered_blocks(text)
    answers = []
    for number, question in enumerate(FIXED_QUESTIONS, 1):
        # the first paragraph: what follows a blank line is chatter ("Hope this helps!")
        answer = clean(re.split(r"\n\s*\n", blocks.get(number, ""))[0])
        # a model that restates the question first ("Describe the audio: It is ...")
        if answer.lower().startswith(question.lower().rstrip("?")):
            answer = clean(answer[len(question):].lstrip("?:.- "))
        if not answer:
            return None
        answers.append(answer)
    return answers


def parse_answer(text: str) -> str | None:
    """One free answer: the text without an "Answer:" label; None when nothing is left."""
    text = clean(text)
    match = _ANSWER.match(text)
    answer = clean(match.group(1)) if match else text
    return answer if any(c.isalpha() for c in answer) else None


def parse_question(text: str) -> str | None:
    """The first sentence of `text` that is a question ("What a lovely piece! What is its tempo?" ->
    the second); None when there is none."""
    for sentence in re.findall(r"[^.!?\n]*\?", _QUESTION_LABEL.sub("", clean(text))):
        # 'A listener might ask: "What is its tempo?' -> the quoted question
        sentence = clean(_QUESTION_LABEL.sub("", sentence.split('"')[-1].strip()))
        if len(sentence.split()) >= 3:
            return sentence
    return None


def parse_open(text: str) -> list[tuple[str, str]] | None:
    """The first 5 (question, answer) pairs, or None when fewer than 5 have both parts."""
    pairs = []
    for _, block in sorted(numbered_blocks(text).items()):
        lines = block.splitlines()
        if not lines:
            continue
        question, rest = lines[0], lines[1:]
        answer_at = next((i for i, line in enumerate(rest) if _ANSWER.match(line)), None)
        if answer_at is not None:
            question = " ".join([question, *rest[:answer_at]])
            answer = "\n".join([_ANSWER.match(rest[answer_at]).group(1), *rest[answer_at + 1:]])
        elif "?" in question:  # "1. What is the mood? It is calm." on one line
            question, _, answer = question.partition("?")
            question, answer = question + "?", "\n".join([answer, *rest])
        else:
            continue
        answer = re.split(r"\n\s*\n", answer.strip())[0]  # the answer's first paragraph, as above
        question, answer = clean(_QUESTION_LABEL.sub("", question)), clean(answer)
        if question and answer:
            pairs.append((question, answer))
    return pairs[:OPEN_PAIRS] if len(pairs) >= OPEN_PAIRS else None
