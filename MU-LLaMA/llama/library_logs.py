"""Quiets what other libraries log at every start and no user of this package needs to read.

transformers and diffusers import torchao (the int8 option) when it is installed; on a machine without
CUDA it reports the CUDA kernels it cannot load, and torch the enums torchao registers. Neither touches
int8 weight-only quantisation. Imported first by the package, before any of those libraries."""

import logging

logging.getLogger("torchao").setLevel(logging.ERROR)
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
