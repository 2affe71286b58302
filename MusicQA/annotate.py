"""Question-answer synthesis for MusicQA: an LLM reads a clip's caption or tags (it never hears the
audio) and writes the 4 fixed answers and 5 open question-answer pairs of each clip.

`annotate(clips, llm, output)` appends one JSON line per clip to `output` and flushes it to disk
before going on, so a run killed at any moment loses at most the clips of the batch in flight; run
again, it skips the clips already in the file (a line cut short by the kill is dropped first).
Two ways of asking (`prompting`):
- "list" (the original pipeline's, for 7B chat models): one request for the 4 numbered answers and
  one for the 5 numbered question/answer pairs.
- "item" (for small models that cannot keep a numbered layout, e.g. SmolLM2-135M): one request per
  fixed answer, one per open question (about a given aspect: tempo, mood, ...), then one per answer.
LLM output is parsed leniently (numbering styles, extra text, markdown) and validated; an output
that does not parse is asked for again with a new sample, at most `retries` times; a clip that
still fails is written with "status": "failed" and the last raw outputs, never dropped silently.
"""

import re
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from llama.records import append_records, read_jsonl

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


class ChatLLM:
    """A causal LM answering batches of chat conversations. The model's own chat template is used; a
    tokenizer without one (mosaicml/mpt-7b-chat) gets ChatML, the format that model was tuned on.
    A LLaMA-architecture model (Llama-2-chat, SmolLM2) decodes with this project's generation loop,
    `decode_batch` conversations at once with continuous batching; others with transformers' generate."""

    def __init__(self, name_or_path: str, device: str = "cpu", dtype: str = "auto", max_new_tokens: int = 768,
                 top_k: int = 4, seed: int = 0, decode_batch: int = 16):
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.tokenizer.padding_side = "left"  # batched generation continues every prompt at its end
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        self.llama = None
        if AutoConfig.from_pretrained(name_or_path).model_type == "llama" and Path(name_or_path).is_dir():
            from llama import Tokenizer, load_llama

            self.llama = load_llama(name_or_path, device=device, dtype=getattr(torch, dtype))
            self.llama_tokenizer = Tokenizer(name_or_path)
        else:
            self.model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=getattr(torch, dtype)).to(device)
            self.model.eval()
        stops = [self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids("<|im_end|>")]
        self.stop_ids = sorted({s for s in stops if isinstance(s, int) and s != self.tokenizer.unk_token_id})
        self.device, self.max_new_tokens, self.top_k, self.decode_batch = device, max_new_tokens, top_k, decode_batch
        self.seed = seed
        torch.manual_seed(seed)

    def render(self, messages: list[dict]) -> str:
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return turns + "<|im_start|>assistant\n"

    def generate(self, conversations: Sequence[list[dict]], temperature: float) -> list[str]:
        texts = [self.render(c) for c in conversations]
        if self.llama is not None:
            from llama import generate

            ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
            self.seed += 1  # a new sample on every call (retries), the same run after run
            out = generate(self.llama, self.llama_tokenizer, ids, max_new_tokens=self.max_new_tokens,
                           temperature=temperature, top_k=self.top_k, seed=self.seed, stop_ids=self.stop_ids,
                           batch_size=self.decode_batch)
            return [self.tokenizer.decode(c.tokens, skip_special_tokens=True) for c in out]
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        with self.torch.inference_mode():
            out = self.model.generate(**batch, do_sample=temperature > 0, temperature=temperature or None,
                                      top_k=self.top_k, top_p=1.0, max_new_tokens=self.max_new_tokens,
                                      eos_token_id=self.stop_ids, pad_token_id=self.tokenizer.pad_token_id)
        texts = self.tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        return [t.split("<|im_end|>")[0] for t in texts]


def ask(llm, requests: list[list[dict]], parse, temperature: float, retries: int) -> list[tuple]:
    """(parsed output or None, last raw output, tries) per request; an output that does not parse is
    asked for again, with a new sample, at most `retries` times."""
    results = [(None, "", 0)] * len(requests)
    todo = list(range(len(requests)))
    for attempt in range(1, retries + 2):
        texts = llm.generate([requests[i] for i in todo], temperature)
        for i, text in zip(todo, texts, strict=True):
            results[i] = (parse(text), text, attempt)
        todo = [i for i in todo if results[i][0] is None]
        if not todo:
            break
    return results


def ask_lists(llm, clips: list, retries: int, temperatures: tuple[float, float]) -> list[dict]:
    """Per clip {"fixed": [4 answers] or None, "open": [5 (q, a)] or None, "raw", "tries"}: 2 requests."""
    fixed = ask(llm, [conversation(FIXED_INSTRUCTIONS, c) for c in clips], parse_fixed, temperatures[0], retries)
    pairs = ask(llm, [conversation(OPEN_INSTRUCTIONS, c) for c in clips], parse_open, temperatures[1], retries)
    return [{"fixed": f[0], "open": p[0], "raw": {"fixed": f[1], "open": p[1]}, "tries": {"fixed": f[2], "open": p[2]}}
            for f, p in zip(fixed, pairs, strict=True)]


def ask_items(llm, clips: list, retries: int, temperatures: tuple[float, float]) -> list[dict]:
    """The same as `ask_lists`, one request per fixed answer, per open question, then per its answer."""
    fixed = ask(llm, [item_request(ITEM_ANSWER, c, question=q) for c in clips for q in FIXED_QUESTIONS],
                parse_answer, temperatures[0], retries)
    questions = ask(llm, [item_request(ITEM_QUESTION, c, aspect=a) for c in clips for a in ASPECTS],
                    parse_question, temperatures[1], retries)
    asked = [i for i, question in enumerate(questions) if question[0] is not None]
    replies = ask(llm, [item_request(ITEM_ANSWER, clips[i // len(ASPECTS)], question=questions[i][0]) for i in asked],
                  parse_answer, temperatures[1], retries)
    answers = dict(zip(asked, replies, strict=True))
    results = []
    for k in range(len(clips)):
        mine = fixed[k * len(FIXED_QUESTIONS):(k + 1) * len(FIXED_QUESTIONS)]
        span = range(k * len(ASPECTS), (k + 1) * len(ASPECTS))
        opened = [(questions[i], answers.get(i, (None, "", 0))) for i in span]
        results.append({
            "fixed": None if any(f[0] is None for f in mine) else [f[0] for f in mine],
            "open": None if any(q[0] is None or a[0] is None for q, a in opened) else [(q[0], a[0]) for q, a in opened],
            "raw": {"fixed": "\n\n".join(f[1] for f in mine),
                    "open": "\n\n".join(f"{q[1]}\n{a[1]}".strip() for q, a in opened)},
            "tries": {"fixed": max(f[2] for f in mine), "open": max(max(q[2], a[2]) for q, a in opened)},
        })
    return results


def record(clip, result: dict) -> dict:
    """The JSON line of a clip from its `ask_lists`/`ask_items` result."""
    base = {"clip_id": clip.clip_id, "audio": str(clip.audio), "description": clip.description,
            "tries": result["tries"]}
    failed = [name for name, key in (("fixed answers", "fixed"), ("open pairs", "open")) if result[key] is None]
    if failed:
        return {**base, "status": "failed", "error": f"could not parse the {' and the '.join(failed)}",
                "raw": result["raw"]}
    return {**base, "status": "ok",
            "fixed": [{"question": q, "answer": a} for q, a in zip(FIXED_QUESTIONS, result["fixed"], strict=True)],
            "open": [{"question": q, "answer": a} for q, a in result["open"]]}


def finished_clips(output: Path) -> set[str]:
    """Clip ids already in `output`. A last line cut short by a kill is removed from the file."""
    done = set()
    for number, line in read_jsonl(output, repair=True):
        if not isinstance(line, dict) or "clip_id" not in line:
            raise ValueError(f"{output}, line {number} is not a clip record; fix or remove that line")
        done.add(line["clip_id"])
    return done


def annotate(clips: list, llm, output, batch_size: int = 8, retries: int = 5, prompting: str = "list",
             temperatures: tuple[float, float] = (0.5, 0.4)) -> dict:
    """Append a record for every clip of `clips` not yet in `output`; returns counts. `temperatures`:
    of the fixed answers and of the open pairs (the original pipeline's)."""
    if prompting not in PROMPTING:
        raise ValueError(f"prompting must be one of {PROMPTING}, not {prompting!r}")
    ask_batch = ask_lists if prompting == "list" else ask_items
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    done = finished_clips(output)
    todo = [c for c in clips if c.clip_id not in done]
    counts = {"clips": len(clips), "skipped": len(clips) - len(todo), "ok": 0, "failed": 0}
    progress = tqdm(total=len(todo), unit="clip", desc=output.name)
    with output.open("a", encoding="utf-8") as f:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            for clip, result in zip(batch, ask_batch(llm, batch, retries, temperatures), strict=True):
                line = record(clip, result)
                counts[line["status"]] += 1
                append_records(f, [line])
            progress.update(len(batch))
    progress.close()
    return counts


OUTPUT_NAMES = {"musiccaps": "MusicCapsAQA.jsonl", "mtt": "MTT_AQA.jsonl", "mtg": "MTG_AQA.jsonl"}


def main(source: str, argv=None):
    """The command line of musiccaps_process.py, MTT_process.py and MTG_process.py."""
    import argparse
    import time

    from sources import READERS

    parser = argparse.ArgumentParser(description=f"{source}: question-answer records for every clip, with an LLM. "
                                     + __doc__.split("\n\n")[1])
    parser.add_argument("--dir", required=True, help=f"the {source} folder (metadata file and audio)")
    parser.add_argument("--output", help=f"JSONL output (default DIR/{OUTPUT_NAMES[source]})")
    parser.add_argument("--llm", default="mosaicml/mpt-7b-chat", help="HF model name or local folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", help="auto: bfloat16 on GPU, float32 on CPU")
    parser.add_argument("--batch_size", type=int, default=8, help="clips whose requests are queued together")
    parser.add_argument("--decode_batch", type=int, default=16,
                        help="requests decoded at once, with continuous batching (LLaMA-architecture LLMs)")
    parser.add_argument("--limit", type=int, help="only the first N clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retries", type=int, default=5, help="new samples for an output that does not parse")
    parser.add_argument("--max_new_tokens", type=int, default=768)
    parser.add_argument("--prompting", choices=PROMPTING, default="list",
                        help="list: numbered lists, 2 requests per clip (7B chat models); item: one request per "
                             "answer and question (small models such as SmolLM2-135M)")
    parser.add_argument("--resume", action="store_true", help="the default: clips already in the output are skipped")
    args = parser.parse_args(argv)
    clips = READERS[source](args.dir)[: args.limit]
    output = Path(args.output or Path(args.dir) / OUTPUT_NAMES[source])
    llm = ChatLLM(args.llm, args.device, args.dtype, args.max_new_tokens, seed=args.seed,
                  decode_batch=args.decode_batch)
    start = time.perf_counter()
    counts = annotate(clips, llm, output, args.batch_size, args.retries, args.prompting)
    new = counts["ok"] + counts["failed"]
    print(f"{output}: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} already done; "
          f"{new / max(time.perf_counter() - start, 1e-9) * 3600:.0f} clips/hour")
