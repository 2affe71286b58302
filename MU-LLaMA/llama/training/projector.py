"""A MuMu-LLaMA checkpoint to train the output projector from, its input standardised (output_projector.py
says why): a fresh projector whose fixed per-channel statistics are those of the [AUD] states that the
training step itself produces, so that it learns from exactly the states it will see. The demo MuMu-LLaMA's
projector phase and the tiny run's stage 2 start this way."""

import torch

from ..checkpoints import read_mumu, save_mumu
from ..paths import llama_folder
from .config import TrainConfig
from .loop import build_run
from .mumu import initial_tensors


@torch.no_grad()
def projector_statistics(config: TrainConfig, batches: int) -> dict:
    """The projector's input mean and std per channel over the first `batches` batches of the config's data,
    taken through the training step of the model `config` starts from."""
    run = build_run(config, "cpu")
    run.model.eval()
    seen = []
    hook = run.model.output_projector.register_forward_pre_hook(
        lambda module, inputs: seen.append((inputs[0].float() + inputs[1].float()).flatten(0, 1)))
    for start in range(0, min(batches * config.batch_size, len(run.dataset)), config.batch_size):
        run.step(run.model, run.collate([run.dataset[i] for i in range(start, start + config.batch_size)]))
    hook.remove()
    projector = run.model.output_projector
    projector.set_input_statistics(torch.cat(seen))
    return {f"output_projector.{n}": b.clone() for n, b in projector.named_buffers()}


def write_standardized_start(source, config: TrainConfig, batches: int) -> None:
    """Write `config.pretrained_path`: the checkpoint `source` with a fresh output projector (initialised with
    `config.seed`) that standardises its input by `projector_statistics` over `batches` batches."""
    tensors, mumu_config, _ = read_mumu(source)
    mumu_config.projector_standardize = True
    initial = initial_tensors(mumu_config, llama_folder(config.llama_path, config.llama_type), config.seed)
    tensors.update({k: v for k, v in initial.items() if k.startswith("output_projector.")})
    save_mumu(config.pretrained_path, tensors, mumu_config)  # the model projector_statistics runs
    tensors.update(projector_statistics(config, batches))
    save_mumu(config.pretrained_path, tensors, mumu_config)
