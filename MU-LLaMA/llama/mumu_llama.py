"""MuMu-LLaMA (released as M2UGen): MU-LLaMA with image and video inputs and music output.

Inputs: three frozen encoders (MERT for music, ViT for images, ViViT for video), each summarised by
its own bridge (bridge.py; SwiGLU width = the LLaMA width) into one vector per input. The last
3 x `query_layer` layers of the backbone take adapter tokens in three groups, music then image then
video: group k's layer j attends to `feature + prefix_query[k * query_layer + j]`, or to the bare
prefix row when that input is absent (as the original does).

Output: eight tokens [AUD0]..[AUD7] appended to the vocabulary. The last layer's states before the
final norm at the positions that predict them go through the output projector (output_projector.py)
to condition the music decoder (decoders/).

Parameter names: the bridges are stored under the original's flat names (`mu_mert_*`, `iu_vit_*`,
`iu_vivit_*`; `to_upstream` / `from_upstream`), everything else under the original's names as is.
"""

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import bridge
from .bridge import Bridge
from .model import Transformer
from .mu_llama import answer_loss
from .output_projector import OutputProjector

MODALITIES = ("music", "image", "video")  # the order of the layer groups, first to last
# modality -> (module attribute, the original's parameter prefix)
BRIDGES = {"music": ("music_bridge", "mu_mert"), "image": ("image_bridge", "iu_vit"),
           "video": ("video_bridge", "iu_vivit")}
# The projector's output for each music decoder: (query rows, width). MusicGen reads 128 rows of its
# T5 width; AudioLDM2 one row holding 128 x 1024 T5 states and 8 x 768 GPT-2 states; the demo's note-event
# decoder (decoders/notes.py) one row of 64.
DECODER_CONDITIONING = {"musicgen": (128, 768), "audioldm2": (1, 128 * 1024 + 8 * 768), "notes": (1, 64)}
AUDIO_TOKENS = tuple(f"[AUD{i}]" for i in range(8))
# The decoder-alignment target is the decoder's conditioning times this (the original's; at inference
# the projector output is divided by it before the decoder).
TARGET_SCALE = 10
# The parameter groups (MuMuLLaMA.parameter_groups) each training stage of the original trains
# (MUMU.md section 3): 1 encoder alignment, 2 decoder alignment, 3 instruction tuning. The original
# never trains the gates; `trained_names(stage, train_gates=True)` adds them (the project's configs,
# stage 1), since with closed gates no input can reach the text.
STAGES = {
    1: ("norms", "biases", "lora", "music_bridge", "image_bridge", "video_bridge", "prefix", "embeddings",
        "projector"),
    2: ("norms", "biases", "lora", "projector", "prefix", "embeddings"),
    3: ("norms", "biases", "lora", "prefix"),
}


@dataclass
class MuMuConfig:
    """Everything beyond the base LLaMA that shapes a MuMu-LLaMA; stored with checkpoints."""

    query_layer: int = 6  # adapted layers per modality; the last 3 x query_layer layers are adapted
    mert_layers: int = 25  # MERT hidden states per clip (num_hidden_layers + 1)
    mert_dim: int = 1024
    vit_tokens: int = 197  # ViT output tokens: (image_size / patch_size)^2 + 1
    vit_dim: int = 768
    vivit_tokens: int = 3137  # ViViT output tokens: frames / 2 x (224 / 16)^2 + 1
    vivit_dim: int = 768
    bridge_width: int | None = None  # SwiGLU width of the bridges; default the LLaMA width (original)
    lora_rank: int = 16
    music_decoder: str = "musicgen"  # a key of DECODER_CONDITIONING
    projector_queries: int | None = None  # default: the decoder's
    projector_out: int | None = None
    projector_width: int = 512  # the projector's transformer (released: 512 wide, 4 + 4 layers)
    projector_layers: int = 4
    projector_standardize: bool = False  # fixed input statistics (output_projector.py; the demo's, not released)
    prompt_template: str = "alpaca"

    def __post_init__(self):
        if self.music_decoder not in DECODER_CONDITIONING:
            raise ValueError(f"music_decoder must be one of {tuple(DECODER_CONDITIONING)}, not {self.music_decoder!r}")
        queries, out = DECODER_CONDITIONING[self.music_decoder]
        self.projector_queries = self.projector_queries or queries
        self.projector_out = self.projector_out or out

    def to_dict(self) -> dict:
        return asdict(self)

    def backbone_args(self) -> dict:
        """ModelArgs fields the backbone needs: biases and LoRA always on, 1024 positions (original)."""
        return {"w_bias": True, "w_lora": True, "lora_rank": self.lora_rank, "max_seq_len": 1024}

    def encoder_shape(self, modality: str) -> tuple[int, int]:
        """(tokens or layers, width) the modality's bridge reads."""
        return {"music": (self.mert_layers, self.mert_dim), "image": (self.vit_tokens, self.vit_dim),
                "video": (self.vivit_tokens, self.vivit_dim)}[modality]


_TO_UPSTREAM, _FROM_UPSTREAM = bridge.name_tables(BRIDGES.values())


def to_upstream(key: str) -> str:
    """A MuMu-LLaMA parameter name as the original code's checkpoints spell it."""
    return bridge.rename(key, _TO_UPSTREAM)


def from_upstream(key: str) -> str:
    return bridge.rename(key, _FROM_UPSTREAM)


class MuMuLLaMA(nn.Module):
    def __init__(self, llama: Transformer, config: MuMuConfig, mert=None, vit=None, vivit=None):
        super().__init__()
        if 3 * config.query_layer > llama.args.n_layers:
            raise ValueError(f"3 x query_layer={config.query_layer} exceeds the backbone's "
                             f"{llama.args.n_layers} layers")
        self.config = config
        self.llama = llama
        self.mert, self.vit, self.vivit = mert, vit, vivit
        dim = llama.args.dim
        width = config.bridge_width or dim
        for modality, (attribute, _) in BRIDGES.items():
            setattr(self, attribute, Bridge(*config.encoder_shape(modality), dim, width))
        self.prefix_query = nn.Embedding(3 * config.query_layer, dim)
        self.output_projector = OutputProjector(dim, config.projector_out, config.projector_queries,
                                                config.projector_width, config.projector_layers,
                                                config.projector_standardize)

    def parameter_groups(self) -> dict[str, list[str]]:
        """Parameter names by the module that owns them: each bridge, the prefix, the projector, the
        embedding, and the backbone's gates, norms, biases and LoRA."""
        groups = {attribute: [f"{attribute}.{n}" for n, _ in getattr(self, attribute).named_parameters()]
                  for attribute, _ in BRIDGES.values()}
        groups["prefix"] = ["prefix_query.weight"]
        groups["projector"] = [f"output_projector.{n}" for n, _ in self.output_projector.named_parameters()]
        groups["embeddings"] = ["llama.tok_embeddings.weight"]
        for group, names in self.llama.parameter_groups().items():
            groups[group] = [f"llama.{n}" for n in names]
        return groups

    def trained_names(self, stage: int, train_gates: bool = False, groups: list[str] | None = None) -> list[str]:
        """What `stage` trains: the original's set (STAGES), plus the gates with `train_gates`; `groups`
        (names of `parameter_groups`) replaces the stage's set."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {tuple(STAGES)}, not {stage!r}")
        owned = self.parameter_groups()
        unknown = sorted(set(groups or ()) - set(owned))
        if unknown:
            raise ValueError(f"unknown parameter groups {unknown}; known: {sorted(owned)}")
        trains = tuple(groups) if groups is not None else STAGES[stage]
        trains += ("gates",) if train_gates and "gates" not in trains else ()
        return [n for group in trains for n in owned[group]]

    def set_stage(self, stage: int, train_gates: bool = False, groups: list[str] | None = None) -> list[str]:
        """Freeze everything but the stage's trainable set (or `groups`), cast that set to fp32 (as the
        original); returns its names."""
        names = set(self.trained_names(stage, train_gates, groups))
        for name, param in self.named_parameters():
            param.requires_grad_(name in names)
            if name in names:
                param.data = param.data.float()
        return [n for n, _ in self.named_parameters() if n in names]

    @property
    def audio_token_ids(self) -> list[int]:
        """[AUD0]..[AUD7]: the last eight rows of the vocabulary."""
        vocab = self.llama.args.vocab_size
        return list(range(vocab - len(AUDIO_TOKENS), vocab))

    def encoder(self, modality: str):
        return {"music": self.mert, "image": self.vit, "video": self.vivit}[modality]

    def bridge(self, modality: str) -> Bridge:
        return getattr(self, BRIDGES[modality][0])

    # --- inputs -> adapter tokens --------------------------------------------------------------

    def features(self, modality: str, inputs: torch.Tensor) -> torch.Tensor:
        """[B, tokens or layers, width] encoder outputs of one modality -> [B, dim] vectors."""
        return self.bridge(modality)(inputs)

    def adapters(self, features: dict[str, torch.Tensor | None], batch: int) -> dict[int, torch.Tensor]:
        """{layer: [B, dim]} adapter tokens of the last 3 x query_layer layers. features: {modality:
        [B, dim]} bridge outputs; a modality left out, None, or a zero row (a request without that
        input in a mixed batch) leaves its layers the bare prefix rows."""
        q = self.config.query_layer
        first = self.llama.args.n_layers - 3 * q
        rows = self.prefix_query.weight
        out = {}
        for k, modality in enumerate(MODALITIES):
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
        """Full-sequence logits [B, S, vocab] (for tests and training)."""
        return self.llama(tokens, adapters=self.adapters(features, tokens.shape[0]))

    # --- training ------------------------------------------------------------------------------

    def optional_names(self) -> set[str]:
        """What a batch may leave without gradient: the bridges (no input of their kind) and the projector
        (no music answer)."""
        groups = self.parameter_groups()
        return {n for g in ("music_bridge", "image_bridge", "video_bridge", "projector") for n in groups[g]}

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint keeps, under this module's names: every group any stage (or the gates
        switch) trains. The frozen base and the encoders are not in it."""
        names = {n for group in self.parameter_groups().values() for n in group}
        names |= {f"output_projector.{n}" for n, _ in self.output_projector.named_buffers()}
        return {k: v for k, v in self.state_dict().items() if k in names}

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor, inputs: dict, targets: torch.Tensor | None = None):
        """The training step's (CE, MSE), bridges included (so that DDP and FSDP see them run).
        inputs: {modality: (rows [n], encoder outputs [n, tokens or layers, width])} for the rows of the
        batch that have that input; the other rows get a zero feature, i.e. the bare prefix rows."""
        features, idle = {}, 0.0
        for modality in MODALITIES:
            if modality in inputs:
                rows, encoded = inputs[modality]
                vectors = self.features(modality, encoded)
                features[modality] = vectors.new_zeros(tokens.shape[0], vectors.shape[-1]).index_copy(0, rows, vectors)
            elif torch.is_grad_enabled():  # see `idle` below
                idle = idle + 0 * self.features(modality, self.prefix_query.weight.new_zeros(
                    1, *self.config.encoder_shape(modality))).sum()
        ce, mse = self.loss(tokens, labels, features, targets)
        if torch.is_grad_enabled() and not (targets is not None and (labels == self.audio_token_ids[0]).any()):
            states = self.prefix_query.weight.new_zeros(1, len(AUDIO_TOKENS), self.llama.args.dim)
            idle = idle + 0 * self.project(states).sum()
        # Every bridge and the projector take part in every step, weighted 0 where the batch has no input
        # for them: under FSDP each process then reduces the same gradients whatever its batch holds. The
        # engine drops such all-zero gradients (Run.optional), so AdamW skips them as if never computed.
        return ce + idle, mse

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
        if targets is None:
            return ce, ce.new_zeros(())
        rows, starts = (labels == self.audio_token_ids[0]).nonzero(as_tuple=True)
        if len(rows) != len(set(rows.tolist())):
            raise ValueError("an answer holds [AUD0] more than once: one music target per row")
        if not len(rows):
            return ce, ce.new_zeros(())
        n = len(AUDIO_TOKENS)
        index = starts[:, None] - 1 + torch.arange(n, device=starts.device)  # the positions predicting them
        states = hidden[rows[:, None], index]
        projected = self.project(states)
        return ce, F.mse_loss(projected, targets[rows].to(projected))
