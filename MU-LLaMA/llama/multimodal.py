"""One LLaMA that hears, sees and watches, and asks for music: the backbone with gated adapters, a bridge per
input modality, the prefix rows, and optionally the [AUD] output tokens with the output projector that
conditions a music decoder.

MU-LLaMA is this model with one modality, music, entering the last `query_layer` layers, and no music
output (mu_llama.MULLaMAConfig); MuMu-LLaMA (M2UGen) with three, music, image and video, entering the last
3 x `query_layer` layers in that order, and music output (mumu_llama.MuMuConfig). A config says which
modalities the model takes, what each encoder gives (`encoder_shape`), the bridges' width and the projector.

Per input, the modality's frozen encoder gives [B, layers or tokens, width] (MERT's per-layer time-means,
ViT's or ViViT's tokens); its bridge (bridge.py) one vector per input; that vector plus a learned prefix
row is the adapter token of each of the modality's layers, entering attention through the frozen `wv` and
a per-head tanh gate (model.Attention). A request without that input leaves its layers the bare prefix rows.

Output: eight tokens [AUD0]..[AUD7] appended to the vocabulary. The last layer's states before the final
norm at the positions that predict them go through the projector (output_projector.py) to condition the
music decoder (decoders/).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .audio import SAMPLE_RATE
from .bridge import Bridge
from .model import Transformer
from .output_projector import OutputProjector
from .prompt import IGNORE_INDEX

AUDIO_TOKENS = tuple(f"[AUD{i}]" for i in range(8))


@dataclass(frozen=True)
class Modality:
    bridge: str  # the bridge's module attribute
    upstream: str  # the prefix of its parameters in the original checkpoints (`mu_mert_agg.weight`)
    encoder: str  # the encoder's module attribute


# In the order of their layer groups, first to last. A fourth modality is one more entry here, an encoder
# in encoders/, and its shape in the config (README, docs/architecture.md).
MODALITIES = {"music": Modality("music_bridge", "mu_mert", "mert"),
              "image": Modality("image_bridge", "iu_vit", "vit"),
              "video": Modality("video_bridge", "iu_vivit", "vivit")}


def answer_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy over answer tokens (labels == IGNORE_INDEX elsewhere): the mean over
    each sample's answer tokens, then over samples. At batch size 1 this is the original loss; per
    sample it makes the loss of a batch independent of how it is split over processes and
    accumulation steps. A sample without answer tokens counts as 0 (as the original code's)."""
    logits, targets = logits[:, :-1], labels[:, 1:]
    per_token = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX,
                                reduction="none").view(targets.shape)
    counts = (targets != IGNORE_INDEX).sum(dim=1)
    return (per_token.sum(dim=1) / counts.clamp(min=1)).mean()


class MultimodalLLaMA(nn.Module):
    """config: a MULLaMAConfig or a MuMuConfig (what checkpoints store). encoders: {"mert", "vit", "vivit"}
    frozen encoder modules, any of them None or absent (features then come from a cache)."""

    def __init__(self, llama: Transformer, config, encoders: dict | None = None):
        super().__init__()
        groups = len(config.modalities)
        if groups * config.query_layer > llama.args.n_layers:
            raise ValueError(f"{groups} x query_layer={config.query_layer} adapted layers exceed the backbone's "
                             f"{llama.args.n_layers} layers")
        self.config = config
        self.llama = llama
        for modality in MODALITIES.values():
            setattr(self, modality.encoder, (encoders or {}).get(modality.encoder))
        dim = llama.args.dim
        for name in config.modalities:
            setattr(self, MODALITIES[name].bridge, Bridge(*config.encoder_shape(name), dim, config.bridge_dim(dim)))
        self.prefix_query = nn.Embedding(groups * config.query_layer, dim)
        music = config.music_output
        self.output_projector = None if music is None else OutputProjector(
            dim, music.out, music.queries, music.width, music.layers, music.standardize)

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.config.modalities

    def encoder(self, modality: str):
        return getattr(self, MODALITIES[modality].encoder)

    def bridge(self, modality: str) -> Bridge:
        return getattr(self, MODALITIES[modality].bridge)

    @property
    def sample_rate(self) -> int:
        """The rate clips must have: the music encoder's (its preprocessor_config.json), MERT-v1's without one."""
        return self.mert.sample_rate if self.mert is not None else SAMPLE_RATE

    @property
    def audio_token_ids(self) -> list[int]:
        """[AUD0]..[AUD7]: the last eight rows of the vocabulary (a model with music output)."""
        vocab = self.llama.args.vocab_size
        return list(range(vocab - len(AUDIO_TOKENS), vocab))

    # --- inputs -> adapter tokens --------------------------------------------------------------

    def features(self, modality: str, encoded: torch.Tensor) -> torch.Tensor:
        """[B, layers or tokens, width] encoder outputs of one modality -> [B, dim] vectors."""
        return self.bridge(modality)(encoded)

    def adapters(self, features: dict[str, torch.Tensor | None], batch: int) -> dict[int, torch.Tensor]:
        """{layer: [B, dim]} adapter tokens of the adapted layers. features: {modality: [B, dim]} bridge
        outputs; a modality left out, None, or a zero row (a request without that input in a mixed batch)
        leaves its layers the bare prefix rows."""
        q = self.config.query_layer
        first = self.llama.args.n_layers - len(self.modalities) * q
        rows = self.prefix_query.weight
        out = {}
        for k, modality in enumerate(self.modalities):
            feature = features.get(modality)
            for j in range(q):
                row = rows[k * q + j][None]
                out[first + k * q + j] = row.expand(batch, -1) if feature is None else feature.to(row) + row
        return out

    # --- [AUD] states -> decoder conditioning --------------------------------------------------

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """[B, 8, dim] pre-norm last-layer states at the positions predicting [AUD0..7] -> [B, Q, out]:
        the projector output (the original divides it by 10 before the decoder; see decoders/)."""
        ids = torch.tensor(self.audio_token_ids, device=self.prefix_query.weight.device)
        return self.output_projector(hidden, self.llama.tok_embeddings(ids)[None])

    def logits(self, tokens: torch.Tensor, features: dict[str, torch.Tensor | None]) -> torch.Tensor:
        """Full-sequence logits [B, S, vocab]."""
        return self.llama(tokens, adapters=self.adapters(features, tokens.shape[0]))

    # --- training ------------------------------------------------------------------------------

    def parameter_groups(self) -> dict[str, list[str]]:
        """Parameter names by the module that owns them: each bridge, the prefix, the backbone's gates,
        norms, biases and LoRA, and with music output the projector and the embedding (its [AUD] rows)."""
        groups = {MODALITIES[m].bridge: [f"{MODALITIES[m].bridge}.{n}" for n, _ in self.bridge(m).named_parameters()]
                  for m in self.modalities}
        groups["prefix"] = ["prefix_query.weight"]
        if self.output_projector is not None:
            groups["projector"] = [f"output_projector.{n}" for n, _ in self.output_projector.named_parameters()]
            groups["embeddings"] = ["llama.tok_embeddings.weight"]
        for group, names in self.llama.parameter_groups().items():
            groups[group] = [f"llama.{n}" for n in names]
        return groups

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint keeps, under this module's names: every parameter group (anything training
        may change) and the projector's buffers. Never the frozen base or the encoders."""
        names = {n for group in self.parameter_groups().values() for n in group}
        if self.output_projector is not None:
            names |= {f"output_projector.{n}" for n, _ in self.output_projector.named_buffers()}
        return {k: v for k, v in self.state_dict().items() if k in names}

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor, inputs: dict,
                targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch's (CE, MSE), the bridges run inside (so that DDP and FSDP see them).
        inputs: {modality: (rows [n], encoder outputs [n, layers or tokens, width])} for the rows of the
        batch that have that input; the other rows get a zero feature, i.e. the bare prefix rows."""
        features = {}
        for modality, (rows, encoded) in inputs.items():
            vectors = self.features(modality, encoded)
            features[modality] = vectors.new_zeros(tokens.shape[0], vectors.shape[-1]).index_copy(0, rows, vectors)
        return self.loss(tokens, labels, features, targets)

    def loss(self, tokens: torch.Tensor, labels: torch.Tensor, features: dict[str, torch.Tensor | None],
             targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross-entropy over answer tokens, decoder-alignment MSE) of a batch.

        labels: the answer tokens, IGNORE_INDEX elsewhere. targets: [B, Q, out] what the projector
        should write for each row whose answer holds [AUD0]..[AUD7] (the original: 10 x MusicGen's T5
        states of the output caption at 128 tokens, or AudioLDM2's prompt embeddings); rows without
        [AUD0] carry no MSE. The projector reads the pre-norm last-layer states at the positions that
        predict [AUD0]..[AUD7] and those tokens' embeddings, as at inference. MSE is 0 without targets.
        """
        logits, hidden = self.llama(tokens, adapters=self.adapters(features, tokens.shape[0]), hidden=True)
        ce = answer_loss(logits, labels)
        if targets is None or self.output_projector is None:
            return ce, ce.new_zeros(())
        rows, starts = (labels == self.audio_token_ids[0]).nonzero(as_tuple=True)
        if len(rows) != len(set(rows.tolist())):
            raise ValueError("an answer holds [AUD0] more than once: one music target per row")
        if not len(rows):
            return ce, ce.new_zeros(())
        n = len(AUDIO_TOKENS)
        index = starts[:, None] - 1 + torch.arange(n, device=starts.device)  # the positions predicting them
        projected = self.project(hidden[rows[:, None], index])
        return ce, F.mse_loss(projected, targets[rows].to(projected))
