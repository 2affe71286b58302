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

from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from ..records import append_records, read_jsonl
from .prompts import (
    ASPECTS,
    FIXED_INSTRUCTIONS,
    FIXED_QUESTIONS,
    ITEM_ANSWER,
    ITEM_QUESTION,
    OPEN_INSTRUCTIONS,
    PROMPTING,
    conversation,
    item_request,
    parse_answer,
    parse_fixed,
    parse_open,
    parse_question,
)


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

    from ..flags import HelpFormatter
    from .sources import READERS

    parser = argparse.ArgumentParser(description=f"{source}: question-answer records for every clip, with an LLM.\n\n"
                                     + __doc__.split("\n\n")[1], formatter_class=HelpFormatter)
    parser.add_argument("--dir", required=True, help=f"the {source} folder (metadata file and audio)")
    parser.add_argument("--output", help=f"JSONL output (default DIR/{OUTPUT_NAMES[source]})")
    parser.add_argument("--llm", default="mosaicml/mpt-7b-chat", help="HF model name or local folder")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N, where the LLM runs")
    parser.add_argument("--dtype", default="auto", help="auto: bfloat16 on GPU, float32 on CPU")
    parser.add_argument("--batch_size", type=int, default=8, help="clips whose requests are queued together")
    parser.add_argument("--decode_batch", type=int, default=16,
                        help="requests decoded at once, with continuous batching (LLaMA-architecture LLMs)")
    parser.add_argument("--limit", type=int, help="only the first N clips")
    parser.add_argument("--seed", type=int, default=0,
                        help="sampling seed of the LLM (a retry draws a new sample)")
    parser.add_argument("--retries", type=int, default=5, help="new samples for an output that does not parse")
    parser.add_argument("--max_new_tokens", type=int, default=768, help="most tokens the LLM writes per request")
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
