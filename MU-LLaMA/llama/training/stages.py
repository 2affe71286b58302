"""What each training stage trains, for every model, in one table; and the freezing that follows from it.

Entries are parameter groups of the multimodal model (MultimodalLLaMA.parameter_groups): each bridge, the
prefix, the backbone's gates, norms, biases and LoRA, and with music output the projector and the embedding.
MU-LLaMA's two phases and MuMu-LLaMA's three stages are the originals' (UPSTREAM.md, MUMU.md section 3). The
original MuMu-LLaMA never trains the gates; `train_gates` adds them (this project's stage 1), since with
closed gates no input can reach the text. A new stage is one more entry (README: docs/architecture.md).
"""

import re

STAGES = {
    ("mu-llama", "pretrain"): ("music_bridge", "prefix", "gates"),
    ("mu-llama", "finetune"): ("norms", "biases", "lora"),
    ("mumu", 1): ("norms", "biases", "lora", "music_bridge", "image_bridge", "video_bridge", "prefix", "embeddings",
                  "projector"),
    ("mumu", 2): ("norms", "biases", "lora", "projector", "prefix", "embeddings"),
    ("mumu", 3): ("norms", "biases", "lora", "prefix"),
}


def trained_names(model, stage: tuple, train_gates: bool = False, groups: list[str] | None = None) -> list[str]:
    """The parameters `stage` ((model, phase or stage), a key of STAGES) trains, plus the gates with
    `train_gates`; `groups` (names of the model's parameter groups) replaces the stage's set. A group
    written `lora@18` keeps only its parameters in backbone layers 18 and up (training stops there)."""
    if stage not in STAGES:
        raise ValueError(f"no stage {stage[1]!r} for {stage[0]}: one of {[s for m, s in STAGES if m == stage[0]]}")
    owned = model.parameter_groups()
    unknown = sorted({g.split("@")[0] for g in groups or ()} - set(owned))
    if unknown:
        raise ValueError(f"unknown parameter groups {unknown}; known: {sorted(owned)}")
    trains = tuple(groups) if groups is not None else STAGES[stage]
    trains += ("gates",) if train_gates and "gates" not in trains else ()
    return [n for group in trains for n in from_layer(owned.get(group.split("@")[0], []), group)]


def from_layer(names: list[str], group: str) -> list[str]:
    """`names` in backbone layers from the one `group` names after "@" (all of them without "@")."""
    if "@" not in group:
        return names
    first = int(group.split("@")[1])
    return [n for n in names if (m := re.search(r"\.layers\.(\d+)\.", n)) and int(m.group(1)) >= first]


def set_trainable(model, names) -> list[str]:
    """Freeze everything but `names`, which are cast to fp32 (as the original); returns them in model order."""
    names = set(names)
    for name, param in model.named_parameters():
        param.requires_grad_(name in names)
        if name in names:
            param.data = param.data.float()
    return [n for n, _ in model.named_parameters() if n in names]
