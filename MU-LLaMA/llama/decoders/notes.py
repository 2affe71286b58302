"""The demo's music decoder: a note-event decoder small enough to train on a CPU in seconds.

No pretrained MusicGen, EnCodec or T5 can be had offline, so the demo MuMu-LLaMA writes music through
this instead. Like MusicGen it has a text encoder whose output is its conditioning, and it can be
conditioned either by text or by states in that space (the output projector's, /10). Unlike MusicGen it
does not generate audio tokens: a linear head reads the conditioning as the musical attributes of the
project's synthetic set (instrument family, tempo, mode, loudness), the synthetic set's composer turns
them into note events (chords and an arpeggio, data/synthetic.py) and the General-MIDI synth plays
them. It knows only what that set holds: 7 instrument families, slow or fast, major or minor, quiet or
loud.

The text encoder is a bag of words (the mean of learned word vectors, layer-normalised, times 0.1 so
that the x10 training targets of MuMu-LLaMA are of order 1); encoder and head are trained together to
recognise the attributes of captions, with noise added to the conditioning so that the head also
reads the projector's approximate outputs.
"""

import json
import random
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .base import MusicDecoderError, read_folder_json

MODEL_TYPE = "note-events"
SCALE = 0.1  # conditioning = SCALE x layer-normalised word mean


def attribute_classes() -> dict[str, list[str]]:
    from ..data.synthetic import FAMILIES, LOUDNESS, MODES, TEMPI

    return {"instrument": sorted(FAMILIES), "tempo": sorted(TEMPI), "mode": sorted(MODES),
            "loudness": sorted(LOUDNESS)}


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


class NoteEventModel(nn.Module):
    def __init__(self, vocab: int, width: int, classes: list[int]):
        super().__init__()
        self.classes = classes
        self.words = nn.EmbeddingBag(vocab, width, mode="mean")
        self.head = nn.Linear(width, sum(classes))

    def condition(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Word ids of a batch of texts (EmbeddingBag's flat ids + offsets) -> [B, 1, width]."""
        bag = self.words(ids, offsets)
        return SCALE * F.layer_norm(bag, bag.shape[-1:])[:, None]

    def logits(self, conditioning: torch.Tensor) -> list[torch.Tensor]:
        """[B, Q, width] -> one [B, classes] logit tensor per attribute."""
        return list(self.head(conditioning.float().mean(1) / SCALE).split(self.classes, dim=-1))


class NoteEventDecoder:
    """A folder written by `train_note_decoder` (config.json with model_type 'note-events', model.safetensors)."""

    def __init__(self, model: NoteEventModel, vocab: list[str], attributes: dict, sample_rate: int,
                 max_seconds: float):
        self.model = model.eval()
        self.vocab = {w: i for i, w in enumerate(vocab)}
        self.attributes = attributes
        self.sample_rate = sample_rate
        self.max_seconds = max_seconds

    @classmethod
    def load(cls, path, device="cpu", dtype=torch.float32) -> "NoteEventDecoder":
        what = "a note-event decoder folder (config.json with model_type 'note-events'; demo/mumu/notes)"
        config = read_folder_json(path, "config.json", what)
        if config.get("model_type") != MODEL_TYPE:
            raise MusicDecoderError(f"{path}/config.json has model_type {config.get('model_type')!r}: expected {what}")
        attributes = config["attributes"]
        model = NoteEventModel(len(config["vocab"]), config["width"], [len(v) for v in attributes.values()])
        model.load_state_dict(load_file(Path(path) / "model.safetensors"))
        # The attributes and the synth are discrete and on the CPU: nothing is gained on another device.
        return cls(model, config["vocab"], attributes, config["sample_rate"], config["max_seconds"])

    @property
    def condition_tokens(self) -> int:
        return 1

    @property
    def condition_size(self) -> int:
        return self.model.words.embedding_dim

    def check_seconds(self, seconds: float) -> float:
        if not 0.5 <= seconds <= self.max_seconds:
            raise MusicDecoderError(f"seconds must lie between 0.5 and {self.max_seconds:g} for the note-event "
                                    f"decoder, not {seconds}")
        return seconds

    @torch.no_grad()
    def targets(self, texts: list[str], dropout: bool = False) -> torch.Tensor:
        """The conditioning of each text [B, 1, width] (before MuMu-LLaMA's x10); `dropout` is accepted for
        the decoders' common interface: this encoder has none."""
        ids = [[self.vocab[w] for w in words(t) if w in self.vocab] for t in texts]
        offsets = torch.tensor([0] + [len(i) for i in ids[:-1]]).cumsum(0)
        return self.model.condition(torch.tensor([i for row in ids for i in row], dtype=torch.long), offsets)

    @torch.no_grad()
    def choose(self, embeds, temperature: float | None = None, seed: int | None = None) -> list[dict]:
        """The attributes each row of `embeds` [B, Q, width] asks for: the most likely class of each
        (temperature None or 0), or classes drawn at `temperature`, seeded."""
        embeds = torch.as_tensor(embeds).float().cpu()
        if embeds.ndim != 3 or embeds.shape[-1] != self.condition_size:
            raise MusicDecoderError(f"embeddings must be shaped [batch, tokens, {self.condition_size}], "
                                    f"got {tuple(embeds.shape)}")
        generator = torch.Generator().manual_seed(seed if seed is not None else random.randrange(2**31))
        chosen = [{} for _ in range(len(embeds))]
        for (name, classes), logits in zip(self.attributes.items(), self.model.logits(embeds), strict=True):
            if temperature:
                picks = torch.multinomial((logits / temperature).softmax(-1), 1, generator=generator)[:, 0]
            else:
                picks = logits.argmax(-1)
            for row, pick in zip(chosen, picks.tolist(), strict=True):
                row[name] = classes[pick]
        return chosen

    def from_text(self, texts: list[str], seconds: float, temperature: float | None = None,
                  seed: int | None = None) -> list[np.ndarray]:
        return self.from_embeddings(self.targets(texts), seconds, temperature, seed)

    def from_embeddings(self, embeds, seconds: float, temperature: float | None = None,
                        seed: int | None = None) -> list[np.ndarray]:
        """One mono float32 waveform at `sample_rate` per row of `embeds` [B, Q, width]."""
        from ..data import synthetic

        self.check_seconds(seconds)
        rng = random.Random(seed)
        waves, render = [], synthetic.Renderer(self.sample_rate)
        for chosen in self.choose(embeds, temperature, seed):
            facts = {**chosen, "program": synthetic.FAMILIES[chosen["instrument"]][0],
                     "bpm": sum(synthetic.TEMPI[chosen["tempo"]]) // 2,
                     "velocity": synthetic.LOUDNESS[chosen["loudness"]], "count": 1}
            waves.append(render(synthetic.compose(facts, seconds, rng), seconds))
        return waves


def training_texts() -> list[tuple[str, dict]]:
    """Every caption the synthetic set writes (all attribute combinations, each caption template),
    with its attributes."""
    from ..data import synthetic

    texts = []
    classes = attribute_classes()
    for instrument in classes["instrument"]:
        for tempo in classes["tempo"]:
            for mode in classes["mode"]:
                for loudness in classes["loudness"]:
                    facts = {"instrument": instrument, "tempo": tempo, "mode": mode, "loudness": loudness}
                    texts += [(template.format(**facts), facts) for template in synthetic.ANSWERS["caption"]]
    return texts


def train_note_decoder(folder, width: int = 64, steps: int = 400, noise: float = 0.05, seed: int = 0,
                       max_seconds: float = 30.0) -> NoteEventDecoder:
    """Train the text encoder and head together on `training_texts` (attribute cross-entropy, the head
    reading the conditioning plus Gaussian noise of std `noise`) and write the folder."""
    from ..audio import SAMPLE_RATE

    torch.manual_seed(seed)
    texts = training_texts()
    vocab = sorted({w for text, _ in texts for w in words(text)})
    classes = attribute_classes()
    model = NoteEventModel(len(vocab), width, [len(v) for v in classes.values()])
    decoder = NoteEventDecoder(model, vocab, classes, SAMPLE_RATE, max_seconds)
    labels = torch.tensor([[values.index(facts[name]) for name, values in classes.items()] for _, facts in texts])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-2, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        ids = [[decoder.vocab[w] for w in words(t)] for t, _ in texts]
        offsets = torch.tensor([0] + [len(i) for i in ids[:-1]]).cumsum(0)
        conditioning = model.condition(torch.tensor([i for row in ids for i in row]), offsets)
        logits = model.logits(conditioning + noise * torch.randn_like(conditioning))
        loss = sum(F.cross_entropy(part, labels[:, k]) for k, part in enumerate(logits))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({
        "model_type": MODEL_TYPE, "width": width, "vocab": vocab, "attributes": classes, "sample_rate": SAMPLE_RATE,
        "max_seconds": max_seconds}, indent=1))
    return decoder
