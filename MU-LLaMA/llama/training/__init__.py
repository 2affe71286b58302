"""Training MU-LLaMA and MuMu-LLaMA: the run configuration (`config`), the loop (`loop`) that
`MU-LLaMA/train.py` drives, the run state and resumable checkpoints (`run`), each model's recipe (`mu_llama`,
`mumu`), what each phase or stage trains (`stages`), and several processes (`distributed`: DDP, FSDP2)."""

from .config import DataSource, TrainConfig, parse_overrides
from .loop import dry_run, train

__all__ = ["DataSource", "TrainConfig", "dry_run", "parse_overrides", "train"]
