"""Training MuMu-LLaMA: one stage's model, data, loss and checkpoint format, for the training loop.

Stage 1 starts from the base LLaMA (`initial_tensors`); stages 2 and 3 from the previous stage's checkpoint
(`pretrained_path`, or the released checkpoint.pth). Each stage trains what training/stages.py says (plus
the gates with `train_gates`); every checkpoint keeps all the tensors any stage trains
(`MultimodalLLaMA.checkpoint_state`) plus the head's [AUD] rows, so that the next stage, `inference.py` and
`llama.load` read it alike.
"""

from functools import partial
from pathlib import Path

import torch

from ..checkpoints import read_llama, read_mumu, save_mumu
from ..checkpoints.mert import load_mert
from ..checkpoints.safetensors import EMBEDDING_ROWS, HEAD_ROWS
from ..data.batch import collate, model_inputs, stack_rows
from ..data.caches import FeatureCache
from ..data.dataset import mix, report_source
from ..data.mumu import MODEL_MODALITY, MuMuDataset, caption_key, check_records
from ..data.sources import read_source
from ..decoders import load_decoder
from ..decoders.base import alignment_targets
from ..encoders.vit import load_vit
from ..encoders.vivit import load_vivit
from ..files import CheckpointError
from ..loading import assemble, check_encoders
from ..model import Transformer
from ..multimodal import AUDIO_TOKENS, MODALITIES, MultimodalLLaMA
from ..mumu_llama import MuMuConfig
from ..paths import llama_folder
from .config import TrainConfig, data_ratios
from .run import Run
from .stages import set_trainable, trained_names
from .start import keep_pretrained

CACHE_KEYS = {"music": "feature_cache", "image": "vit_cache", "video": "vivit_cache"}
ENCODER_KEYS = {"music": ("mert", "mert_path", load_mert), "image": ("vit", "vit_path", load_vit),
                "video": ("vivit", "vivit_path", load_vivit)}


def cache_shape(modality: str, cache: FeatureCache) -> tuple[int, int]:
    meta = cache.meta
    return (meta["layers"], meta["hidden"]) if modality == "music" else (meta["tokens"], meta["width"])


def initial_tensors(config: MuMuConfig, folder, seed: int = 0) -> dict:
    """The trained tensors of a MuMu-LLaMA before stage 1, for `assemble`: the bridges, prefix and projector at
    PyTorch's default initialisation (seeded), the base embedding with 8 rows of ones for the [AUD] tokens and
    8 new head rows at nn.Linear's default initialisation (as the original; the head rows are never trained;
    none for a tied head, which is the embedding). The backbone's norms come from the base; gates, biases and
    LoRA start as `loading.init_added_parameters` sets them."""
    args, state = read_llama(folder, **config.backbone_args())
    torch.manual_seed(seed)
    with torch.device("meta"):  # only the new modules are materialised
        llama = Transformer(args)
    fresh = MultimodalLLaMA(llama, config)
    tensors = {k: v for k, v in fresh.state_dict().items() if not k.startswith("llama.")}
    embedding = state["tok_embeddings.weight"]
    tensors["llama.tok_embeddings.weight"] = torch.cat(
        [embedding, torch.ones(len(AUDIO_TOKENS), args.dim, dtype=embedding.dtype)])
    if not args.tie_embeddings:  # a tied head is the embedding, [AUD] rows included
        tensors[HEAD_ROWS] = torch.nn.Linear(args.dim, len(AUDIO_TOKENS), bias=False).weight.detach()
    return tensors


def load_inputs(config: TrainConfig, device) -> tuple[dict, dict]:
    """({modality: feature cache}, {"mert"/"vit"/"vivit": encoder or None}): a modality is read from its
    cache when the config names one, else encoded by its encoder when the config names that."""
    caches = {m: FeatureCache(getattr(config, key)) for m, key in CACHE_KEYS.items() if getattr(config, key)}
    for modality, cache in caches.items():
        if not len(cache):
            raise SystemExit(f"{CACHE_KEYS[modality]}: {cache.folder} holds no features; run "
                             "MU-LLaMA/data/cache_features.py first")
    encoders = {}
    for modality, (name, key, load) in ENCODER_KEYS.items():
        path = getattr(config, key)
        encoders[name] = load(path, device=device) if path and modality not in caches else None
    return caches, encoders


def model_config(config: TrainConfig, caches: dict, encoders: dict, target_shape) -> MuMuConfig:
    """A new MuMu-LLaMA's config: sizes from the encoders or caches given (the released sizes for a
    modality given neither), the projector's output from the targets' shape."""
    fields = {"music": ("mert_layers", "mert_dim"), "image": ("vit_tokens", "vit_dim"),
              "video": ("vivit_tokens", "vivit_dim")}
    shapes = {}
    for modality, (name, _, _) in ENCODER_KEYS.items():
        shape = (cache_shape(modality, caches[modality]) if modality in caches
                 else encoders[name].shape if encoders[name] is not None else None)
        if shape is not None:
            shapes.update(zip(fields[modality], shape, strict=True))
    if target_shape is not None:
        shapes["projector_queries"], shapes["projector_out"] = target_shape
    return MuMuConfig(query_layer=config.query_layer, bridge_width=config.bridge_width, lora_rank=config.lora_rank,
                      music_decoder=config.music_decoder, prompt_template=config.prompt_template,
                      projector_width=config.projector_width, projector_layers=config.projector_layers, **shapes)


def check_caches(mumu_config: MuMuConfig, caches: dict) -> None:
    for modality, cache in caches.items():
        if cache_shape(modality, cache) != mumu_config.encoder_shape(modality):
            raise SystemExit(f"{CACHE_KEYS[modality]} {cache.folder} holds {cache_shape(modality, cache)} features, "
                             f"the model's {modality} bridge reads {mumu_config.encoder_shape(modality)}")


def build_dataset(config: TrainConfig, tokenizer, caches: dict, encoders: dict, target_cache, sample_rate: int):
    """The mixed dataset of every source, each checked up front: (dataset, report, captions kept)."""
    # a record modality the model can take: its features are cached, or its encoder is loaded
    usable = [r for r, m in MODEL_MODALITY.items()
              if m in caches or encoders[ENCODER_KEYS[m][0]] is not None]
    datasets, report, captions = [], [], set()
    for source in config.data:
        kind = source.kind or "records"
        records, unread = read_source(source.path, source.audio_root, kind, source.task)
        kept, problems = check_records(records, tokenizer, config.max_words, usable, config.prompt_template,
                                       config.tokenization, caches, config.answer_eos)
        problems.update(unread)
        report.append(report_source(source.path, kind, len(records) + sum(unread.values()), len(kept), problems))
        if not kept:
            raise SystemExit(f"{source.path}: no usable record (see above)")
        captions.update(r.caption for r in kept if r.caption is not None)
        vivit = encoders["vivit"]
        datasets.append(MuMuDataset(kept, tokenizer, config.max_words, config.prompt_template, config.tokenization,
                                    caches, target_cache, sample_rate, vivit.frames if vivit is not None else 32,
                                    config.answer_eos))
    return mix(datasets, data_ratios(config), config.seed), report, captions


def load_targets(config: TrainConfig, device) -> tuple:
    """(target cache or None, decoder or None, the targets' [queries, width] or None): targets come from
    the cache unless `upstream_targets` asks for the original's noisy ones, else from the decoder."""
    cache = FeatureCache(config.target_cache) if config.target_cache and not config.upstream_targets else None
    if cache is not None and len(cache):
        return cache, None, tuple(cache.meta["shape"])
    if config.music_decoder_path:
        decoder = load_decoder(config.music_decoder, config.music_decoder_path, device=device)
        return cache, decoder, tuple(decoder.targets(["music"]).shape[1:])
    return cache, None, None


def mumu_run(config: TrainConfig, device) -> Run:
    caches, encoders = load_inputs(config, device)
    target_cache, decoder, target_shape = load_targets(config, device)
    folder = llama_folder(config.llama_path, config.llama_type)
    started = {}
    if config.pretrained_path:  # the previous stage's checkpoint (or the released checkpoint.pth)
        tensors, mumu_config, embedded = read_mumu(config.pretrained_path)
        if mumu_config.music_decoder != config.music_decoder:
            raise SystemExit(f"{config.pretrained_path} was trained for {mumu_config.music_decoder}, the config "
                             f"says music_decoder: {config.music_decoder}")
        kept, started = keep_pretrained(tensors, config.pretrained_keep, config.pretrained_path)
        if config.pretrained_keep == "adapter":  # the rest as a new model starts
            tensors = {**initial_tensors(mumu_config, folder, config.seed), **kept}
    else:
        mumu_config, embedded = model_config(config, caches, encoders, target_shape), {}
        tensors = initial_tensors(mumu_config, folder, config.seed)
    try:
        check_encoders(mumu_config, encoders, {name: getattr(config, key) for name, key, _ in ENCODER_KEYS.values()})
    except CheckpointError as e:
        raise SystemExit(str(e)) from None
    check_caches(mumu_config, caches)
    if target_shape is not None and target_shape != (mumu_config.projector_queries, mumu_config.projector_out):
        raise SystemExit(f"the decoder-alignment targets are {list(target_shape)}, the model's projector writes "
                         f"[{mumu_config.projector_queries}, {mumu_config.projector_out}]: another music decoder")
    model, tokenizer = assemble(mumu_config, folder, tensors, embedded, encoders=encoders,
                                source=config.pretrained_path or folder, device=device,
                                dtype=getattr(torch, config.base_dtype))
    # Whatever a checkpoint keeps stays in fp32 (trained or not in this stage), as the file holds it.
    kept = set(model.checkpoint_state())
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in kept:
                param.data = (tensors[name] if name in tensors else param.data).to(device=device, dtype=torch.float32)
    model.llama.checkpointing = config.grad_checkpointing
    try:
        set_trainable(model, trained_names(model, ("mumu", config.stage), config.train_gates, config.trained_groups))
    except ValueError as e:
        raise SystemExit(f"trained_groups: {e}") from None
    n = len(AUDIO_TOKENS)
    tied = model.llama.args.tie_embeddings
    # a tied head is the embedding: its [AUD] rows are saved with it
    head = {} if tied else {HEAD_ROWS: model.llama.output.weight[-n:].detach().float().cpu()}
    embedding = model.llama.tok_embeddings.weight
    if config.train_embedding == "audio_rows" and embedding.requires_grad:
        if not tied:
            raise SystemExit("train_embedding: audio_rows trains the [AUD] rows as rows of the output head, which "
                             f"{config.llama_path}'s head is not (untied): use train_embedding: all")
        # The base rows get an exactly zero gradient, and Adam moves no row that never had one.
        model.llama.trained_rows = n

    dataset, report, captions = build_dataset(config, tokenizer, caches, encoders, target_cache, model.sample_rate)
    if captions and target_cache is not None:
        missing = sum(caption_key(c) not in target_cache for c in captions)
        if missing:
            raise SystemExit(f"{missing} of {len(captions)} music captions are not in target_cache "
                             f"{config.target_cache}: run MU-LLaMA/data/cache_features.py --music_decoder_path ... "
                             "on the same data")
    elif captions and decoder is None:
        raise SystemExit("music answers need their decoder-alignment targets: give target_cache (cache_features.py"
                         " --music_decoder_path) or music_decoder_path")

    def step(network, batch) -> dict:
        tokens, labels = batch["tokens"].to(device), batch["labels"].to(device)
        inputs = model_inputs(model, batch, device)
        targets = stack_rows(batch["target"]) if "target" in batch else None
        captions = batch["caption"]
        if targets is None and decoder is not None and any(c is not None for c in captions):
            rows = [i for i, c in enumerate(captions) if c is not None]
            # the original's target: T5 in train mode with upstream_targets (new dropout noise each time)
            with torch.autocast(torch.device(device).type, enabled=False):
                states = alignment_targets(decoder, [captions[i] for i in rows], dropout=config.upstream_targets)
            targets = states.new_zeros(len(captions), *states.shape[1:])
            targets[rows] = states
        ce, mse = network(tokens, labels, inputs, None if targets is None else targets.to(device))
        parts = {"loss": ce + mse, "ce": ce, "mse": mse}
        if config.upstream_loss_offset:  # the original's +100 on rows with a music caption (no gradient)
            offset = ce.new_tensor(100.0 * sum(c is not None for c in captions) / len(captions))
            parts = {"loss": parts["loss"] + offset, "ce": ce, "mse": mse, "loss_offset": offset}
        return parts

    def write(path: Path, tensors: dict, extra: dict):
        if config.train_embedding == "audio_rows":
            tensors = dict(tensors)
            tensors[EMBEDDING_ROWS] = tensors.pop("llama.tok_embeddings.weight")[-n:]
        save_mumu(path, {**tensors, **head}, model.config, **extra)

    def read(path: Path) -> dict:
        tensors = read_mumu(path)[0]
        tensors.pop(HEAD_ROWS, None)
        rows = tensors.pop(EMBEDDING_ROWS, None)
        if rows is not None:
            tensors["llama.tok_embeddings.weight"] = torch.cat([embedding.detach()[:-n].float().cpu(), rows])
        return tensors

    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    report = {"stage": config.stage, "trained_tensors": len(trainable), "data": report,
              **({"pretrained": started} if started else {})}
    # what a batch may leave without gradient: a bridge (no input of its kind), the projector (no music answer)
    groups = model.parameter_groups()
    optional = {n for g in (*(MODALITIES[m].bridge for m in model.modalities), "projector") for n in groups[g]}
    return Run(model, dataset, partial(collate, pad_id=max(tokenizer.pad_id, 0)), step, write, read,
               [e for e in encoders.values() if e is not None], report, optional)

