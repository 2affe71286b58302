"""What a request holds and what a reply says about music.

A reply asks for music by holding [AUD0] .. [AUD7] in order: the projector reads the states that predicted
them. A reply whose [AUD] tokens came incomplete or out of order makes no music, and says so, naming what
came back (`Reply.music_note`); a reply without any [AUD] token did not ask for music, and says that
instead. `Pipeline.respond(complete_audio=True)` completes the set of a reply that began one (the states
are then read from the answer up to its first [AUD] token followed by [AUD0] .. [AUD7], as the original's
projector reads them); it is off by default: a released checkpoint's replies are left as its model made them.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from .multimodal import AUDIO_TOKENS


@dataclass
class Request:
    """One request: an instruction and any of a clip (mono, at the encoder's rate), an image ([3, H, W] in
    0-1, media.load_image) and a video ([frames, H, W, 3] uint8, media.load_video)."""

    prompt: str
    audio: np.ndarray | None = None
    image: np.ndarray | None = None
    video: np.ndarray | None = None


@dataclass
class Reply:
    text: str  # the answer; with [AUD0] .. [AUD7] in it when the model asked for music
    tokens: list[int]
    conditioning: torch.Tensor | None = None  # projector output [Q, out] when the [AUD] set is complete
    audio_tokens: list[str] = field(default_factory=list)  # the [AUD] tokens the answer holds, in order
    completed: bool = False  # the [AUD] set was completed (Pipeline.respond(complete_audio=True))

    @property
    def asked_for_music(self) -> bool:
        return bool(self.audio_tokens)

    @property
    def music_note(self) -> str | None:
        """One line when the reply makes no music as it came back, or its [AUD] set was completed; None when it
        holds the whole set in order."""
        if self.conditioning is not None and not self.completed:
            return None
        came = " ".join(self.audio_tokens)
        if self.completed:
            return f"the answer's [AUD] tokens came incomplete ({came}); the set was completed to make music"
        if self.audio_tokens:
            return (f"no music: the answer asked for music but its [AUD] tokens came incomplete or out of order "
                    f"({shorten(came)}), not [AUD0] .. [AUD7]; --complete_audio_tokens completes the set")
        return "no music: the answer does not ask for any (it holds no [AUD] token)"


def shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."


def audio_token_names(tokens: list[int], audio_ids: list[int]) -> list[str]:
    return [AUDIO_TOKENS[audio_ids.index(t)] for t in tokens if t in audio_ids]


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
