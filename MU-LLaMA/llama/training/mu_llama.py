"""Training MU-LLaMA: one phase's model, data, loss and checkpoint format, for the training loop.

Pretraining starts from the base LLaMA (the bridge, prefix rows and any LoRA initialised from `seed`);
finetuning from the pretrained checkpoint (`pretrained_path`; by default its bridge, prefix rows and gates,
as the original). Each phase trains what training/stages.py says; every checkpoint keeps all the tensors any
phase trains, so that the next phase, `inference.py` and `llama.load` read it alike.
"""

from functools import partial

import torch

from ..checkpoints import read_mu_llama, save_mu_llama
from ..checkpoints.mert import load_mert
from ..data.batch import collate, model_inputs
from ..data.caches import FeatureCache
from ..data.dataset import MusicQADataset, load_records, mix, report_source
from ..loading import assemble
from ..mu_llama import MULLaMAConfig
from ..multimodal import MultimodalLLaMA
from ..paths import llama_folder
from ..tokenizer import Tokenizer
from .config import TrainConfig, data_ratios
from .run import Run
from .stages import set_trainable, trained_names
from .start import keep_pretrained


def mu_llama_run(config: TrainConfig, device) -> Run:
    cache = FeatureCache(config.feature_cache) if config.feature_cache else None
    model, tokenizer, started = build_model(config, device, cache)
    dataset, report = build_data(config, tokenizer, cache, model)
    if started:
        report["pretrained"] = started

    def step(network, batch):
        ce, _ = network(batch["tokens"].to(device), batch["labels"].to(device), model_inputs(model, batch, device))
        return {"loss": ce}

    def write(path, tensors, extra):
        save_mu_llama(path, tensors, model.config, **extra)

    return Run(model, dataset, partial(collate, pad_id=max(tokenizer.pad_id, 0)), step, write,
               lambda path: read_mu_llama(path)[0], [model.mert] if model.mert is not None else [], report)


def build_model(config: TrainConfig, device, cache: FeatureCache | None) -> tuple[MultimodalLLaMA, Tokenizer, dict]:
    # With a feature cache MERT is not needed: cached clips bring their features, text-only ones zeros.
    mert = load_mert(config.mert_path, device=device) if cache is None else None
    layers, hidden = mert.shape if mert is not None else (cache.meta["layers"], cache.meta["hidden"])
    model_config = MULLaMAConfig(phase=config.phase, query_layer=config.query_layer, mert_layers=layers,
                                 mert_dim=hidden, bridge_width=config.bridge_width, lora_rank=config.lora_rank,
                                 prompt_template=config.prompt_template)
    model, tokenizer = assemble(model_config, llama_folder(config.llama_path, config.llama_type), None,
                                encoders={"mert": mert}, device=device, dtype=getattr(torch, config.base_dtype),
                                seed=config.seed)
    model.llama.checkpointing = config.grad_checkpointing
    started = {}
    if config.pretrained_path:
        kept, started = keep_pretrained(read_mu_llama(config.pretrained_path)[0], config.pretrained_keep,
                                        config.pretrained_path)
        model.load_state_dict({k: v.to(device) for k, v in kept.items()}, strict=False)
    set_trainable(model, trained_names(model, ("mu-llama", config.phase)))
    return model, tokenizer, started


def build_data(config: TrainConfig, tokenizer: Tokenizer, cache: FeatureCache | None, model: MultimodalLLaMA):
    """(the mixed dataset of every source, the data report)."""
    datasets, report = [], []
    for source in config.data:
        records, problems = load_records(source.path, source.audio_root, source.kind)
        report.append(report_source(source.path, source.kind, len(records) + sum(problems.values()), len(records),
                                    problems))
        datasets.append(MusicQADataset(records, tokenizer, config.max_words, config.prompt_template, cache,
                                       config.text_only_audio, model.sample_rate, config.tokenization,
                                       config.answer_eos, model.config.encoder_shape("music")))
    return mix(datasets, data_ratios(config), config.seed), {"data": report}
