"""Training MU-LLaMA: the run configuration (`config`) and the engine (`engine`) that
`MU-LLaMA/train.py` drives, for every phase, on one process or many (DDP, FSDP2)."""

from .config import DataSource, TrainConfig, parse_overrides
from .engine import train

__all__ = ["DataSource", "TrainConfig", "parse_overrides", "train"]
