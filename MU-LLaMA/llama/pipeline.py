"""A MU-LLaMA ready to answer: the network beside what answering needs and the network does not
(its tokenizer, its prompt template, how clips are read and encoded), as Meta's `Llama` wraps its
`Transformer`. `llama.load` returns one; `pipeline.model` is the `nn.Module`.
"""

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .audio import SAMPLE_RATE, load_audio, quiet_warnings, wav_truncation
from .generation import generate
from .mu_llama import MULLaMA
from .mumu_llama import TARGET_SCALE, MuMuLLaMA
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
               seed: int | None = None, on_token=None, batch_size: int | None = None,
               on_answer: Callable[[int, str], None] | None = None) -> list[str]:
        """Answer each (clip, question) pair; a clip object passed several times is encoded once.

        batch_size: pairs decoded at once (default: all), with continuous batching (see `generate`):
        pass many more pairs than `batch_size` and no row waits for the longest answer of a batch.
        on_answer(index, answer): called as each pair's answer is complete, in the order they finish."""
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
        done = None if on_answer is None else (lambda i, c: on_answer(i, extract_answer(c.text)))
        completions = generate(model.llama, self.tokenizer, prompts, max_new_tokens=max_new_tokens,
                               temperature=temperature, top_p=top_p, seed=seed, adapters=model.adapters(adapter),
                               on_token=on_token, batch_size=batch_size, on_done=done)
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


STOP_RULES = ("default", "upstream")


@dataclass
class Request:
    """One MuMu-LLaMA request: an instruction and any of a clip (mono, at the MERT rate), an image
    ([3, H, W] in 0-1, media.load_image) and a video ([frames, H, W, 3] uint8, media.load_video)."""

    prompt: str
    audio: np.ndarray | None = None
    image: np.ndarray | None = None
    video: np.ndarray | None = None


@dataclass
class Reply:
    text: str  # the answer; with [AUD0] .. [AUD7] in it when the model asked for music
    tokens: list[int]
    conditioning: torch.Tensor | None = None  # projector output [Q, out] when all eight [AUD] came in order


def gather_audio_states(tokens: list[int], hidden: dict, audio_ids: list[int]) -> torch.Tensor | None:
    """[8, dim] states of the [AUD] tokens when all eight came in order, as the original gathers them:
    each token is compared with the next expected [AUDi]; a match is kept, anything else is ignored;
    [AUD0], when expected, starts a new set."""
    expected, states = 0, []
    for step, token in enumerate(tokens):
        if token == audio_ids[expected]:
            if expected == 0:
                states = []
            states.append(hidden[step])
            expected = (expected + 1) % len(audio_ids)
    return torch.stack(states) if len(states) == len(audio_ids) else None


class MuMuPipeline:
    """A MuMu-LLaMA ready to answer and to ask for music: model, tokenizer (with the [AUD] tokens),
    the music decoder (None: text only), and the stop rules.

    stop_rules "upstream" are the original's: EOS does not stop, a row stops when its last three
    tokens decode to "\\n###", and the answer is cut at its first newline. "default" stops at EOS or
    at "\\n###" (the next Alpaca section) and keeps a multi-line answer whole.
    """

    def __init__(self, model: MuMuLLaMA, tokenizer: Tokenizer, decoder=None, stop_rules: str = "default",
                 audio_mode: str = "upstream"):
        if stop_rules not in STOP_RULES:
            raise ValueError(f"stop_rules must be one of {STOP_RULES}, not {stop_rules!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.decoder = decoder
        self.stop_rules = stop_rules
        self.audio_mode = audio_mode  # "upstream": MERT hears the first 60 s, as the original
        newline = tokenizer.encode("\n", bos=False)  # empty for a tokenizer that drops newlines
        self.newline = newline[-1] if newline else None

    @property
    def sample_rate(self) -> int:
        """The rate input clips must have (MERT's)."""
        return self.model.mert.sample_rate if self.model.mert is not None else SAMPLE_RATE

    def encode_inputs(self, requests: Sequence[Request]) -> dict[str, torch.Tensor]:
        """{modality: [B, dim]} bridge outputs, zero rows for requests without that input (a zero row
        leaves the bare prefix row, exactly as an absent input); modalities nobody sent are left out."""
        model, features = self.model, {}
        for modality, attribute in (("music", "audio"), ("image", "image"), ("video", "video")):
            rows = [i for i, r in enumerate(requests) if getattr(r, attribute) is not None]
            if not rows:
                continue
            encoder = model.encoder(modality)
            if encoder is None:
                flag = {"music": "--mert_path", "image": "--vit_path", "video": "--vivit_path"}[modality]
                raise ValueError(f"a {modality} input needs its encoder: pass {flag}")
            inputs = [getattr(requests[i], attribute) for i in rows]
            if modality == "music":
                encoded = encoder.layer_means(inputs, mode=self.audio_mode)
            else:
                encoded = encoder.features(inputs)
            vectors = model.features(modality, encoded)
            full = vectors.new_zeros(len(requests), vectors.shape[-1])
            full[rows] = vectors
            features[modality] = full
        return features

    def _stop(self):
        if self.stop_rules == "upstream":
            return [], lambda ids: self.tokenizer.decode(ids[-3:]) == "\n###"
        return [self.tokenizer.eos_id], lambda ids: self.tokenizer.decode(ids[-4:]).endswith("\n###")

    def _text(self, tokens: list[int]) -> str:
        if self.stop_rules == "upstream":
            return self.tokenizer.decode(tokens[:tokens.index(self.newline)] if self.newline in tokens else tokens)
        return extract_answer(self.tokenizer.decode(tokens))

    @torch.inference_mode()
    def respond(self, requests: Sequence[Request], *, max_new_tokens: int = 512, temperature: float = 0.0,
                top_p: float = 1.0, seed: int | None = None, batch_size: int | None = None) -> list[Reply]:
        """Answer requests in one KV-cached decoding, `batch_size` at once (default: all) with continuous
        batching; where a reply holds [AUD0..7] in order, `conditioning` is the projector output for
        the music decoder."""
        if any(not r.prompt.strip() for r in requests):
            raise ValueError("empty prompt: say what you want (a question, or e.g. 'Generate a music')")
        model = self.model
        adapters = model.adapters(self.encode_inputs(requests), len(requests))
        prompts = [format_prompt(r.prompt, model.config.prompt_template) for r in requests]
        stop_ids, stop = self._stop()
        audio_ids = model.audio_token_ids
        completions = generate(model.llama, self.tokenizer, prompts, max_new_tokens=max_new_tokens,
                               temperature=temperature, top_p=top_p, seed=seed, adapters=adapters,
                               stop_ids=stop_ids, stop=stop, hidden_for=audio_ids, batch_size=batch_size)
        replies = []
        for c in completions:
            states = gather_audio_states(c.tokens, c.hidden, audio_ids)
            conditioning = None if states is None else model.project(states[None])[0]
            replies.append(Reply(self._text(c.tokens), c.tokens, conditioning))
        return replies

    def music(self, reply: Reply, seconds: float, conditioning: str = "text", temperature: float | None = None,
              seed: int | None = None, **options) -> np.ndarray:
        """The music a reply asks for, as a mono float waveform at `self.decoder.sample_rate`.

        conditioning "text": the decoder reads the answer text, [AUD] tokens included (the released
        code); "projector": the projector output / 10 (the paper's path: MusicGen's encoder states,
        AudioLDM2's prompt embeddings). temperature: MusicGen's (None: its folder's settings; 0:
        greedy); AudioLDM2 takes none. options: the decoder's own (AudioLDM2's `steps`, 200 by default)."""
        if self.decoder is None:
            raise ValueError("no music decoder loaded: pass --music_decoder_path (and --music_decoder)")
        if reply.conditioning is None:
            raise ValueError("the reply holds no complete [AUD0] .. [AUD7] sequence: no music was asked for")
        sampling = {"seed": seed, **options}
        if temperature is not None:  # MusicGen's
            sampling["temperature"] = temperature
        if conditioning == "text":
            return self.decoder.from_text([reply.text], seconds, **sampling)[0]
        if conditioning == "projector":
            return self.decoder.from_embeddings(reply.conditioning[None] / TARGET_SCALE, seconds, **sampling)[0]
        raise ValueError(f"conditioning must be 'text' or 'projector', not {conditioning!r}")
