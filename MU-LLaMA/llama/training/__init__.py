"""Training MU-LLaMA: the run configuration (`config`) and the engine (`engine`) that
`MU-LLaMA/train.py` drives, for every MU-LLaMA phase and MuMu-LLaMA stage (`mumu`), on one process or
many (DDP, FSDP2)."""

from .config import DataSource, TrainConfig, parse_overrides
from .engine import dry_run, train

__all__ = ["DataSource", "TrainConfig", "dry_run", "parse_overrides", "train"]
