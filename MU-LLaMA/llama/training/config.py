"""A training run, fully described: YAML file + `--set key=value` overrides, unknown keys refused."""

import math
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from ..data.dataset import KINDS as MUSICQA_KINDS
from ..data.sources import KINDS as MUMU_KINDS
from ..decoders.base import DECODER_CONDITIONING
from ..prompt import TOKENIZATIONS
from .stages import STAGES

MODELS = ("mu-llama", "mumu")
SOURCE_KINDS = {"mu-llama": MUSICQA_KINDS, "mumu": (None, *MUMU_KINDS)}
PRETRAINED_KEEP = ("all", "adapter")


@dataclass
class DataSource:
    path: str
    audio_root: str | None = None  # default: the folder of `path`
    ratio: float | None = None  # share of an epoch (mix: ratio); None for plain concatenation
    # the file's dataset class, which fixes its format and input modality (data/sources.py): MU-LLaMA musicqa,
    # alpaca or none (each record with or without a clip); MuMu-LLaMA mucaps, coco, muvideo, mucaps_decoder,
    # musicqa, alpaca, any_to_music, or records (this project's record schema, the default)
    kind: str | None = None
    task: str | None = None  # MuMu-LLaMA records: "caption_to_music" turns caption records into stage-2 requests


@dataclass
class TrainConfig:
    model: str = "mu-llama"  # or "mumu": MuMu-LLaMA (M2UGen), trained by `stage`
    phase: str = "pretrain"  # MU-LLaMA
    stage: int = 1  # MuMu-LLaMA: 1 encoder alignment, 2 decoder alignment, 3 instruction tuning
    train_gates: bool = False  # MuMu-LLaMA: train the attention gates too (the original never does)
    # model
    llama_path: str = ""  # --llama_dir of inference.py; base weights in llama_path/llama_type
    llama_type: str = "7B"
    mert_path: str = "ckpts/MERT-v1-330M"
    pretrained_path: str | None = None  # a trained checkpoint to start from (the previous phase's or stage's)
    # what of it: "all" its trained tensors (to continue training it), or "adapter" the bridges, prefix rows
    # and gates only, the rest from the base weights (MU-LLaMA's finetune after pretraining, as the original).
    # Default: adapter for MU-LLaMA, all for MuMu-LLaMA (each as its original)
    pretrained_keep: str | None = None
    query_layer: int = 20
    bridge_width: int | None = None  # default 4 x LLaMA width
    lora_rank: int = 16
    base_dtype: str = "bfloat16"  # frozen LLaMA weights; trained tensors are always fp32
    # MuMu-LLaMA: the image and video encoders, the music decoder (targets), and its compatibility switches
    vit_path: str | None = None
    vivit_path: str | None = None
    music_decoder: str = "musicgen"
    music_decoder_path: str | None = None  # needed when targets are not cached, or with upstream_targets
    projector_width: int = 512  # a new model's output projector (the released: 512 wide, 4 + 4 layers)
    projector_layers: int = 4
    vit_cache: str | None = None  # folders written by data/cache_features.py
    vivit_cache: str | None = None
    target_cache: str | None = None
    upstream_targets: bool = False  # original: targets from T5 in train mode (dropout), recomputed each step
    upstream_loss_offset: bool = False  # original: +100 added to the CE of rows with a music caption
    # MuMu-LLaMA: parameter groups to train instead of the stage's (MuMuLLaMA.parameter_groups names)
    trained_groups: list[str] | None = None
    # all: the whole embedding trains where the stage trains it (original). audio_rows: only its 8 [AUD]
    # rows, and only as rows of the output head (a backbone whose head is its embedding, as SmolLM2's): the
    # base rows keep their values exactly, checkpoints keep the 8 rows only, and with no trained group below
    # the first adapted layer the backward pass stops there (the demo model's choice)
    train_embedding: str = "all"
    # data
    data: list[DataSource] = field(default_factory=list)
    feature_cache: str | None = None  # folder written by data/cache_features.py
    text_only_audio: str = "silence"
    prompt_template: str = "upstream"
    # separate: the answer tokenised on its own (exact boundary); joint: prompt + answer as one string (original)
    tokenization: str = "separate"
    answer_eos: bool = True  # end each answer with EOS: MU-LLaMA's original does, M2UGen's does not
    max_words: int = 96
    # optimisation
    batch_size: int = 1  # per process
    accum_iter: int = 4
    epochs: int = 150
    split_epoch: int = 1
    warmup_epochs: float = 5.0
    blr: float = 1.0e-4  # lr = blr * effective batch / 256, unless lr is set
    lr: float | None = None
    min_lr: float = 0.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    precision: str = "bf16"  # bf16 | fp16 (with GradScaler) | fp32: autocast of the forward pass
    grad_checkpointing: bool = False
    fsdp: bool = False  # several processes: shard the model over them (FSDP2) instead of replicating it (DDP)
    seed: int = 0
    # run
    output_dir: str = ""
    device: str = "auto"
    num_workers: int = 2
    log_every: int = 10
    save_every: int = 500  # optimizer steps
    max_steps: int | None = None  # stop early (smoke tests); the schedule still spans `epochs`

    @classmethod
    def load(cls, path, overrides: dict) -> "TrainConfig":
        raw = yaml.safe_load(Path(path).read_text()) or {}
        for key, value in overrides.items():
            raw[key] = value
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise SystemExit(f"unknown config keys {unknown} in {path}; known: {sorted(known)}")
        try:
            raw["data"] = [DataSource(**d) for d in raw.get("data", [])]
        except TypeError as e:
            raise SystemExit(f"{path}: a data entry has an unknown key: {e}") from e
        if "betas" in raw:
            raw["betas"] = tuple(raw["betas"])
        for f in fields(cls):  # YAML 1.1 reads 1e-3 (no dot) as a string; a number field takes it as a number
            if isinstance(raw.get(f.name), str) and (f.type is float or float in typing.get_args(f.type)):
                try:
                    raw[f.name] = float(raw[f.name])
                except ValueError:
                    raise SystemExit(f"{f.name} must be a number, not {raw[f.name]!r}") from None
        config = cls(**raw)
        if config.model not in MODELS:
            raise SystemExit(f"model must be one of {', '.join(MODELS)}, not {config.model!r}")
        stages = [stage for model, stage in STAGES if model == config.model]
        if config.model == "mumu" and config.stage not in stages:
            raise SystemExit(f"stage must be one of {', '.join(map(str, stages))}, not {config.stage!r}")
        if config.train_embedding not in ("all", "audio_rows"):
            raise SystemExit(f"train_embedding must be all or audio_rows, not {config.train_embedding!r}")
        if config.train_embedding == "audio_rows" and (config.weight_decay or config.fsdp):
            raise SystemExit("train_embedding: audio_rows keeps the base rows by zeroing their gradients, which "
                             "weight decay would still shrink and FSDP shards: set weight_decay: 0 and fsdp: false")
        if config.model == "mumu" and config.music_decoder not in DECODER_CONDITIONING:
            raise SystemExit(f"music_decoder must be one of {', '.join(DECODER_CONDITIONING)}, "
                             f"not {config.music_decoder!r}")
        phases = [phase for model, phase in STAGES if model == "mu-llama"]
        if config.phase not in phases:
            raise SystemExit(f"phase must be one of {', '.join(phases)}, not {config.phase!r}")
        if config.tokenization not in TOKENIZATIONS:
            raise SystemExit(f"tokenization must be one of {TOKENIZATIONS}, not {config.tokenization!r}")
        if config.precision not in ("bf16", "fp16", "fp32"):
            raise SystemExit(f"precision must be bf16, fp16 or fp32, not {config.precision!r}")
        if not config.data:
            raise SystemExit(f"{path}: no data sources")
        kinds = SOURCE_KINDS[config.model]
        for source in config.data:
            if source.kind not in kinds:
                raise SystemExit(f"{source.path}: kind must be one of {', '.join(map(str, kinds))} for a "
                                 f"{config.model} run, not {source.kind!r}")
            if source.task is not None and (config.model != "mumu" or source.kind not in (None, "records")):
                raise SystemExit(f"{source.path}: task {source.task!r} applies to MuMu-LLaMA record files only")
        if config.pretrained_keep not in (None, *PRETRAINED_KEEP):
            raise SystemExit(f"pretrained_keep must be {' or '.join(PRETRAINED_KEEP)}, not {config.pretrained_keep!r}")
        if config.pretrained_keep is None:
            config.pretrained_keep = "adapter" if config.model == "mu-llama" else "all"
        return config


def parse_overrides(items: list[str]) -> dict:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set takes key=value, not {item!r}")
        overrides[key] = yaml.safe_load(value)
    return overrides


def to_plain(config: TrainConfig) -> dict:
    plain = asdict(config)
    plain["betas"] = list(config.betas)
    return plain


def data_ratios(config: TrainConfig) -> list[float] | None:
    """Each data source's share of an epoch, or None for plain concatenation."""
    shares = [d.ratio for d in config.data]
    if any(r is not None for r in shares) and not all(r is not None for r in shares):
        raise SystemExit("give a ratio for every data source, or for none (plain concatenation)")
    return shares if shares[0] is not None else None


def lr_at(config: TrainConfig, peak: float, epoch: float) -> float:
    """Linear warmup, then half-cycle cosine to min_lr (the original schedule, per iteration)."""
    if epoch < config.warmup_epochs:
        return peak * epoch / config.warmup_epochs
    progress = (epoch - config.warmup_epochs) / max(config.epochs - config.warmup_epochs, 1e-8)
    return config.min_lr + (peak - config.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
