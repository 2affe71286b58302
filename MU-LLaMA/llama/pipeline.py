"""A model ready to answer: the network beside what answering needs and the network does not (its
tokenizer, its prompt template, how inputs are encoded, the music decoder), as Meta's `Llama` wraps its
`Transformer`. `llama.load` returns one for MU-LLaMA and MuMu-LLaMA alike; `pipeline.model` is the
`nn.Module`. One set of verbs: `answer` questions about clips, `respond` to requests with any inputs the
model takes (music, images, video), `stream` an answer as it grows, and `music` for a reply that asked
for it (a model with music output and its decoder).
"""

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from .audio import load_audio, quiet_warnings, wav_truncation
from .decoders.base import decoder_input
from .generation import TEMPERATURE, generate
from .likelihood import continuation_logprobs
from .media import load_image, load_video
from .multimodal import MODALITIES, MultimodalLLaMA
from .prompt import extract_answer, format_prompt
from .replies import Reply, Request, audio_token_names, gather_audio_states
from .tokenizer import Tokenizer

MIN_SAMPLES = 400  # MERT-v1's receptive field, for a model built without its encoder
MIN_ANSWER_TOKENS = 16  # a prompt must leave this much of the context: room for a sentence and [AUD0..7]


STOP_RULES = ("default", "upstream")


class Pipeline:
    """model, tokenizer (with the [AUD] tokens for a model with music output), the music decoder (None:
    text only), the stop rules and how clips are heard (`audio_mode`: "full" whole clips, "upstream" their
    first 60 s, as the original code).

    stop_rules "upstream" are the original M2UGen's: EOS does not stop, a row stops when its last three
    tokens decode to "\\n###", and the answer is cut at its first newline. "default" stops at EOS or
    at "\\n###" (the next Alpaca section) and keeps a multi-line answer whole.
    """

    def __init__(self, model: MultimodalLLaMA, tokenizer: Tokenizer, decoder=None, stop_rules: str = "default",
                 audio_mode: str = "full"):
        if stop_rules not in STOP_RULES:
            raise ValueError(f"stop_rules must be one of {STOP_RULES}, not {stop_rules!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.decoder = decoder
        self.stop_rules = stop_rules
        self.audio_mode = audio_mode
        newline = tokenizer.encode("\n", bos=False)  # empty for a tokenizer that drops newlines
        self.newline = newline[-1] if newline else None

    @property
    def sample_rate(self) -> int:
        """The rate input clips must have (the music encoder's)."""
        return self.model.sample_rate

    @property
    def template(self) -> str:
        return self.model.config.prompt_template

    @property
    def dtype(self) -> torch.dtype:
        """The network's compute dtype (what --dtype auto chose)."""
        return self.model.prefix_query.weight.dtype

    @property
    def max_seq_len(self) -> int:
        return self.model.llama.args.max_seq_len

    def takes(self, modality: str) -> bool:
        """Whether requests may carry this input: the model has its bridge and its encoder is loaded."""
        return modality in self.model.modalities and self.model.encoder(modality) is not None

    def read(self, modality: str, path, start="middle", seed: int | None = None) -> np.ndarray:
        """An input file decoded as its encoder takes it: a clip mono at `sample_rate` (music), an image
        [3, H, W] in 0-1, or the encoder's number of consecutive video frames from `start` ("middle",
        "random" with `seed`, or a frame number). Bad files raise AudioError or MediaError."""
        if modality == "music":
            return load_audio(path, self.sample_rate)
        if modality == "image":
            return load_image(path)
        return load_video(path, frames=self.model.vivit.frames, start=start, seed=seed)

    def load_clip(self, path, audio_mode: str | None = None) -> tuple[np.ndarray, list[str]]:
        """A file at the encoder's rate, and warnings a user should see beside its answer: a truncated
        WAV, a clip too short or too quiet (over the part `audio_mode` encodes) to carry music."""
        wave = load_audio(path, self.sample_rate)
        window = 60.0 if (audio_mode or self.audio_mode) == "upstream" else None
        mert = self.model.mert
        warnings = quiet_warnings(wave, self.sample_rate, window, mert.min_samples if mert else MIN_SAMPLES)
        truncated = wav_truncation(path)
        return wave, [truncated] * bool(truncated) + warnings

    def encode(self, modality: str, inputs: list, audio_mode: str | None = None) -> torch.Tensor:
        """[B, dim] bridge outputs of decoded inputs of one modality (clips at `sample_rate`, images,
        videos), through the modality's encoder."""
        encoder = self.model.encoder(modality)
        if encoder is None:
            raise ValueError(f"a {modality} input needs its encoder: pass --{MODALITIES[modality].encoder}_path")
        return self.model.features(modality, encoder.encode(inputs, mode=audio_mode or self.audio_mode))

    def encode_inputs(self, requests: Sequence[Request]) -> dict[str, torch.Tensor]:
        """{modality: [B, dim]} bridge outputs, zero rows for requests without that input (a zero row
        leaves the bare prefix row, exactly as an absent input); modalities nobody sent are left out."""
        features = {}
        for modality, attribute in (("music", "audio"), ("image", "image"), ("video", "video")):
            rows = [i for i, r in enumerate(requests) if getattr(r, attribute) is not None]
            if not rows:
                continue
            if modality not in self.model.modalities:
                raise ValueError(f"this model takes {' and '.join(self.model.modalities)} input, not {modality}")
            vectors = self.encode(modality, [getattr(requests[i], attribute) for i in rows])
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

    def _generate(self, prompts: list[str], features: dict, on_done=None, max_new_tokens: int = 256, **sampling):
        """Answers within the model's context: max_new_tokens is cut to the room the longest prompt leaves; a
        prompt leaving less than MIN_ANSWER_TOKENS is refused, its length said in tokens and characters."""
        model = self.model
        stop_ids, stop = self._stop()
        music = model.output_projector is not None
        ids = [self.tokenizer.encode(format_prompt(p, self.template), bos=True) for p in prompts]
        longest = max(range(len(ids)), key=lambda i: len(ids[i]))
        room = self.max_seq_len - len(ids[longest])
        if room < MIN_ANSWER_TOKENS:
            chars = len(prompts[longest])
            fits = int(chars * (self.max_seq_len - MIN_ANSWER_TOKENS) / len(ids[longest]))
            raise ValueError(f"the prompt is too long: {len(ids[longest])} tokens ({chars} characters) with its "
                             f"template, and this model's context holds {self.max_seq_len} tokens, "
                             f"{MIN_ANSWER_TOKENS} of them kept for the answer; shorten it to about {fits} characters")
        return generate(model.llama, self.tokenizer, ids, adapters=model.adapters(features, len(prompts)),
                        stop_ids=stop_ids, stop=stop, hidden_for=model.audio_token_ids if music else (),
                        on_done=on_done, max_new_tokens=min(max_new_tokens, room), **sampling)

    @torch.inference_mode()
    def answer(self, clips: Sequence | None, questions: Sequence[str], *, audio_mode: str | None = None,
               max_new_tokens: int = 256, temperature: float = TEMPERATURE, top_p: float = 1.0,
               seed: int | None = None, on_token=None, batch_size: int | None = None,
               on_answer: Callable[[int, str], None] | None = None) -> list[str]:
        """Answer each (clip, question) pair; a clip object passed several times is encoded once. clips None:
        the questions alone (a text-only model, base_llm.py, or a model asked without its input).

        batch_size: pairs decoded at once (default: all), with continuous batching (see `generate`):
        pass many more pairs than `batch_size` and no row waits for the longest answer of a batch.
        on_answer(index, answer): called as each pair's answer is complete, in the order they finish."""
        done = None if on_answer is None else (lambda i, c: on_answer(i, self._text(c.tokens)))
        completions = self._generate(list(questions), self._music(clips, len(questions), audio_mode), done,
                                     max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                                     on_token=on_token, batch_size=batch_size)
        return [self._text(c.tokens) for c in completions]

    @torch.inference_mode()
    def option_logprobs(self, clips: Sequence | None, questions: Sequence[str], options: Sequence[Sequence[str]], *,
                        audio_mode: str | None = None) -> list[list[tuple[float, int]]]:
        """For each (clip, question) and each of its options: (the summed log-probability of the option's text as
        the answer to the question in the model's template, its number of tokens). Options are tokenised on their
        own, without BOS. clips None: the questions alone, as in `answer`."""
        prompts = [self.tokenizer.encode(format_prompt(q, self.template), bos=True) for q in questions]
        encoded = [[self.tokenizer.encode(o, bos=False) for o in row] for row in options]
        if any(not ids for row in encoded for ids in row):
            raise ValueError("an option's text has no tokens: every option needs some text")
        music = self._music(clips, len(questions), audio_mode)
        sums = continuation_logprobs(self.model.llama, prompts, encoded, self.model.adapters(music, len(prompts)))
        return [list(zip(row, map(len, ids), strict=True)) for row, ids in zip(sums, encoded, strict=True)]

    def _music(self, clips: Sequence | None, n: int, audio_mode: str | None) -> dict[str, torch.Tensor]:
        """{"music": [n, dim]} bridge outputs of one clip per question ({} for None); a clip object given several
        times is encoded once."""
        if clips is None:
            return {}
        if len(clips) != n:
            raise ValueError(f"{len(clips)} clips for {n} questions: pass one clip per question")
        index: dict[int, int] = {}
        distinct = []
        for clip in clips:
            if id(clip) not in index:
                index[id(clip)] = len(distinct)
                distinct.append(clip)
        return {"music": self.encode("music", distinct, audio_mode)[[index[id(clip)] for clip in clips]]}

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

    @torch.inference_mode()
    def respond(self, requests: Sequence[Request], *, max_new_tokens: int = 512, temperature: float = TEMPERATURE,
                top_p: float = 1.0, seed: int | None = None, batch_size: int | None = None,
                complete_audio: bool = False) -> list[Reply]:
        """Answer requests in one KV-cached decoding, `batch_size` at once (default: all) with continuous
        batching; where a reply holds [AUD0..7] in order (a model with music output), `conditioning` is the
        projector output for the music decoder. complete_audio: a reply that began an [AUD] set but did not
        finish it in order gets the whole set (replies.py); `Reply.music_note` says so either way."""
        if any(not r.prompt.strip() for r in requests):
            raise ValueError("empty prompt: say what you want (a question, or e.g. 'Generate a music')")
        model = self.model
        features = self.encode_inputs(requests)
        completions = self._generate([r.prompt for r in requests], features, max_new_tokens=max_new_tokens,
                                     temperature=temperature, top_p=top_p, seed=seed, batch_size=batch_size)
        replies = []
        for i, c in enumerate(completions):
            reply = Reply(self._text(c.tokens), c.tokens)
            if model.output_projector is not None:
                reply.audio_tokens = audio_token_names(c.tokens, model.audio_token_ids)
                states = gather_audio_states(c.tokens, c.hidden, model.audio_token_ids)
                if states is None and complete_audio and reply.audio_tokens:
                    states = self._completed_audio_states(requests[i].prompt, c.tokens,
                                                          {m: f[i:i + 1] for m, f in features.items()})
                    reply.completed = True
                reply.conditioning = None if states is None else model.project(states[None])[0]
            replies.append(reply)
        return replies

    def _completed_audio_states(self, prompt: str, tokens: list[int], features: dict) -> torch.Tensor:
        """[8, dim] states predicting [AUD0] .. [AUD7] after the answer up to its first [AUD] token."""
        model, ids = self.model, self.model.audio_token_ids
        first = next(k for k, t in enumerate(tokens) if t in ids)
        prompt_ids = self.tokenizer.encode(format_prompt(prompt, self.template), bos=True)
        sequence = torch.tensor([prompt_ids + tokens[:first] + ids], device=model.prefix_query.weight.device)
        _, hidden = model.llama(sequence, adapters=model.adapters(features, 1), hidden=True)
        start = len(prompt_ids) + first - 1  # the position predicting [AUD0]
        return hidden[0, start:start + len(ids)]

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
            raise ValueError(reply.music_note)
        sampling = {"seed": seed, **options}
        if temperature is not None:  # MusicGen's
            sampling["temperature"] = temperature
        if conditioning == "text":
            return self.decoder.from_text([reply.text], seconds, **sampling)[0]
        if conditioning == "projector":
            return self.decoder.from_embeddings(decoder_input(reply.conditioning[None]), seconds, **sampling)[0]
        raise ValueError(f"conditioning must be 'text' or 'projector', not {conditioning!r}")


MuMuPipeline = Pipeline  # one pipeline for both models
