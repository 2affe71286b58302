"""What a run takes from `pretrained_path`, by one rule for MU-LLaMA and MuMu-LLaMA (`pretrained_keep`):
"all" its trained tensors, to continue training that model, or "adapter" its bridges, prefix rows and
gates only, the rest (LoRA, norms, biases, projector, embedding rows) from the base weights and a fresh
start, as the original MU-LLaMA's finetune starts from its pretraining. Said in one line, and in the
run's report."""

import sys
from collections import Counter

import torch.distributed as dist

GROUPS = (("bridges", lambda n: "_bridge." in n), ("prefix", lambda n: n.startswith("prefix_query")),
          ("gates", lambda n: n.endswith(".gate")), ("lora", lambda n: ".lora_" in n),
          ("norms", lambda n: n.endswith("norm.weight")), ("biases", lambda n: n.endswith(".bias")),
          ("projector", lambda n: n.startswith("output_projector.")), ("embeddings", lambda n: "embeddings" in n
                                                                       or n.startswith("llama.output.")))
ADAPTER = ("bridges", "prefix", "gates")


def group(name: str) -> str:
    return next((g for g, test in GROUPS if test(name)), "other")


def counted(names) -> str:
    return ", ".join(f"{n} {g}" for g, n in Counter(map(group, names)).items())


def keep_pretrained(tensors: dict, keep: str, source) -> tuple[dict, dict]:
    """(the tensors of the checkpoint `source` that the run starts from, what the report says of them)."""
    kept = tensors if keep == "all" else {k: v for k, v in tensors.items() if group(k) in ADAPTER}
    left = [k for k in tensors if k not in kept]
    line = f"pretrained_path {source}: loaded {len(kept)} tensors ({counted(kept)})"
    if left:
        line += (f"; left out {len(left)} ({counted(left)}), taken from the base weights or started afresh "
                 "(pretrained_keep: adapter; pretrained_keep: all keeps them)")
    if not dist.is_initialized() or dist.get_rank() == 0:
        print(line, file=sys.stderr)
    return kept, {"path": str(source), "keep": keep, "loaded": dict(Counter(map(group, kept))),
                  "left_out": dict(Counter(map(group, left)))}
