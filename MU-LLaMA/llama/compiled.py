"""`--compile`: the decoding step (`Transformer.decode`) through torch.compile.

On CUDA the step is captured as CUDA graphs (`mode="reduce-overhead"`): one launch per token instead of
hundreds of small kernels. On the CPU inductor generates C++ for it, which needs a C++ compiler (`$CXX`, else
g++ or clang++). A SlotCache keeps its shapes for a run, so one compiled step serves every token of it; a run
with another number of rows or cache length compiles once more, then those sizes are dynamic.
"""

import os
import shutil
import sys
import time

import torch

from .model import Transformer


class CompileError(RuntimeError):
    """The step cannot be compiled here (no C++ compiler for inductor on the CPU)."""


def check_compiler(device: torch.device) -> None:
    if device.type != "cpu":
        return
    if not any(shutil.which(c) for c in (os.environ.get("CXX"), "g++", "clang++", "c++") if c):
        raise CompileError("--compile on the CPU needs a C++ compiler for torch.compile's inductor, and none was "
                           "found ($CXX, g++, clang++, c++): install one (Debian/Ubuntu: apt-get install g++) or run "
                           "without --compile")


class CompiledStep:
    """A compiled `Transformer.decode`; its first call compiles, and says how long that took on stderr."""

    def __init__(self, model: Transformer):
        self.device = model.tok_embeddings.weight.device
        check_compiler(self.device)
        mode = "reduce-overhead" if self.device.type == "cuda" else None
        self.step = torch.compile(model.decode, mode=mode, fullgraph=True)
        self.compile_seconds: float | None = None

    def __call__(self, tokens, cache, adapters=None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.compile_seconds is None:
            start = time.perf_counter()
            out = self.step(tokens, cache, adapters)
            self.compile_seconds = time.perf_counter() - start
            print(f"compiled the decoding step in {self.compile_seconds:.1f} s", file=sys.stderr)
        else:
            out = self.step(tokens, cache, adapters)
        if self.device.type == "cuda":  # a CUDA graph's outputs are overwritten by its next replay
            out = tuple(t.clone() for t in out)
        return out


def compile_decoding(model: Transformer) -> Transformer:
    """Make `model.decode` the compiled step (in place); returns the model."""
    if not isinstance(model.decode, CompiledStep):
        model.decode = CompiledStep(model)
    return model
