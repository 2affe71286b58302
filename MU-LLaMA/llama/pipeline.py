"""A MU-LLaMA ready to answer: the network beside what answering needs and the network does not
(its tokenizer, its prompt template, how clips are read and encoded), as Meta's `Llama` wraps its
`Transformer`. `llama.load` returns one; `pipeline.model` is the `nn.Module`.
"""

import queue
import threading
import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .audio import load_audio, quiet_warnings, wav_truncation
from .generation import generate
from .mu_llama import MULLaMA
from .prompt import extract_answer, format_prompt
from .tokenizer import Tokenizer

MIN_SAMPLES = 400  # MERT-v1's receptive field, for a model built without its encoder


class Pipeline:
    def __init__(self, model: MULLaMA, tokenizer: Tokenizer, audio_mode: str = "full"):
        self.model = model
        self.tokenizer = tokenizer
        self.audio_mode = audio_mode  # default of answer(): whole clips ("upstream": first 60 s only)

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def template(self) -> str:
        return self.model.config.prompt_template

    def load_clip(self, path, audio_mode: str | None = None) -> tuple[np.ndarray, list[str]]:
        """A file at the encoder's rate, and warnings a user should see beside its answer: a truncated
        WAV, a clip too short or too quiet (over the part `audio_mode` encodes) to carry music."""
        wave = load_audio(path, self.sample_rate)
        window = 60.0 if (audio_mode or self.audio_mode) == "upstream" else None
        mert = self.model.mert
        warnings = quiet_warnings(wave, self.sample_rate, window, mert.min_samples if mert else MIN_SAMPLES)
        truncated = wav_truncation(path)
        return wave, [truncated] * bool(truncated) + warnings

    @torch.inference_mode()
    def answer(self, clips: Sequence, questions: Sequence[str], *, audio_mode: str | None = None,
               max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
               seed: int | None = None, on_token=None) -> list[str]:
        """Answer each (clip, question) pair; a clip object passed several times is encoded once."""
        if len(clips) != len(questions):
            raise ValueError(f"{len(clips)} clips for {len(questions)} questions: pass one clip per question")
        index: dict[int, int] = {}
        distinct = []
        for clip in clips:
            if id(clip) not in index:
                index[id(clip)] = len(distinct)
                distinct.append(clip)
        model = self.model
        means = model.encode_audio(distinct, audio_mode=audio_mode or self.audio_mode)
        adapter = model.adapter(means)[[index[id(clip)] for clip in clips]]
        prompts = [format_prompt(q, self.template) for q in questions]
        completions = generate(model.llama, self.tokenizer, prompts, max_new_tokens=max_new_tokens,
                               temperature=temperature, top_p=top_p, seed=seed, adapters=model.adapters(adapter),
                               on_token=on_token)
        return [extract_answer(c.text) for c in completions]

    def stream(self, clip, question: str, max_seconds: float = float("inf"), **sampling) -> Iterator[str]:
        """Yield the answer as it grows. `answer` runs in a thread and its per-token callback hands each
        new token over a queue; closing this generator (the reader left) stops that thread at the next
        token. After `max_seconds` the answer so far is yielded with a note and the thread is stopped
        the same way."""
        tokens, stop, result = queue.Queue(), threading.Event(), {}
        finished = object()

        def on_token(step, new):
            if stop.is_set():
                raise InterruptedError("answer abandoned")
            tokens.put(new[0])

        def run():
            try:
                result["answer"] = self.answer([clip], [question], on_token=on_token, **sampling)[0]
            except Exception as e:  # handed to the reading side, which re-raises it
                result["error"] = e
            finally:
                tokens.put(finished)

        threading.Thread(target=run, daemon=True).start()
        ids, deadline = [], time.monotonic() + max_seconds
        try:
            while True:
                try:
                    token = tokens.get(timeout=max(deadline - time.monotonic(), 0.001))
                except queue.Empty:
                    yield f"{extract_answer(self.tokenizer.decode(ids))} [stopped after {max_seconds:g} s]".lstrip()
                    return
                if token is finished:
                    break
                if token is not None and token != self.tokenizer.eos_id:
                    ids.append(token)
                    yield extract_answer(self.tokenizer.decode(ids))
        finally:
            stop.set()
        if "error" in result:
            raise result["error"]
        yield result["answer"]
