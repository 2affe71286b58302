"""The original code's parameter names, in one place. It keeps each bridge as flat attributes of the model
(`mu_mert_agg`, `mu_mert_norm_1`, `mu_mert_f1_1`, `iu_vit_proj`, ...); the multimodal model keeps it as a
module (`music_bridge.agg`, `music_bridge.blocks.0.norm`, ...). Every other name is the same in both.
Checkpoints, released and this project's, are written in the original's names."""

from ..bridge import BLOCKS
from ..model import is_added_parameter
from ..multimodal import MODALITIES


def bridge_names(attribute: str, prefix: str) -> dict[str, str]:
    """{module path in the model: the original's attribute} for one bridge: `music_bridge.blocks.0.f1`
    -> `mu_mert_f1_1` (blocks numbered from 1), `music_bridge.agg` -> `mu_mert_agg`."""
    names = {f"{attribute}.agg": f"{prefix}_agg", f"{attribute}.proj": f"{prefix}_proj"}
    for i in range(BLOCKS):
        for part in ("norm", "f1", "f2", "f3"):
            names[f"{attribute}.blocks.{i}.{part}"] = f"{prefix}_{part}_{i + 1}"
    return names


_TO_UPSTREAM = {k: v for m in MODALITIES.values() for k, v in bridge_names(m.bridge, m.upstream).items()}
_FROM_UPSTREAM = {v: k for k, v in _TO_UPSTREAM.items()}
# the start of a bridge parameter's name, as the original spells it
UPSTREAM_PREFIXES = tuple(f"{m.upstream}_" for m in MODALITIES.values())


def _rename(key: str, names: dict[str, str]) -> str:
    owner, _, leaf = key.rpartition(".")
    return f"{names[owner]}.{leaf}" if owner in names else key


def to_upstream(key: str) -> str:
    """A parameter name as the original code's checkpoints spell it."""
    return _rename(key, _TO_UPSTREAM)


def from_upstream(key: str) -> str:
    """An original checkpoint's parameter name as the multimodal model spells it."""
    return _rename(key, _FROM_UPSTREAM)


def is_trained_key(key: str, music_output: bool = False) -> bool:
    """Whether an original state-dict entry is a trained tensor, by its name (there is no model yet to ask): a
    bridge, the prefix, the backbone's gates, norms, biases and LoRA, and with `music_output` (MuMu-LLaMA) the
    projector and the embedding. The same set as the model's checkpoint_state(), which a test holds it to."""
    if key.startswith(UPSTREAM_PREFIXES + ("prefix_query.",)) or (music_output and key.startswith("output_projector.")):
        return True
    return key.startswith("llama.") and (is_added_parameter(key) or key.endswith("norm.weight")
                                         or (music_output and key == "llama.tok_embeddings.weight"))
