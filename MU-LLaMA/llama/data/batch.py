"""The one padding collate of every training dataset, and the step that turns a batch's inputs into what the
multimodal model's forward takes."""

import torch

from ..prompt import IGNORE_INDEX


def collate(items: list[dict], pad_id: int = 0) -> dict:
    """Tokens (padded with pad_id) and labels (with IGNORE_INDEX) to the longest item, as [B, S] tensors; every
    other key of the items a list over the batch, None where an item lacks it (waveforms, images and videos of
    different sizes stay as they are; the encoders batch them)."""
    length = max(len(i["tokens"]) for i in items)
    tokens = torch.full((len(items), length), pad_id, dtype=torch.long)
    labels = torch.full((len(items), length), IGNORE_INDEX, dtype=torch.long)
    for row, item in enumerate(items):
        tokens[row, : len(item["tokens"])] = item["tokens"]
        labels[row, : len(item["labels"])] = item["labels"]
    keys = dict.fromkeys(k for item in items for k in item if k not in ("tokens", "labels"))
    return {"tokens": tokens, "labels": labels, **{k: [item.get(k) for item in items] for k in keys}}


def stack_rows(values: list) -> torch.Tensor | None:
    """Tensors of one shape stacked, zeros for the rows that have None; None when no row has one."""
    known = next((v for v in values if v is not None), None)
    if known is None:
        return None
    return torch.stack([v if v is not None else torch.zeros_like(known) for v in values])


@torch.no_grad()
def model_inputs(model, batch: dict, device) -> dict:
    """{modality: (rows [n], encoder outputs [n, layers or tokens, width])} of a collated batch, for the rows
    that have that input: cached features as they are, decoded inputs (waveforms, images, videos) through the
    modality's frozen encoder."""
    inputs = {}
    for modality in model.modalities:
        values = batch.get(modality) or []
        rows = [i for i, value in enumerate(values) if value is not None]
        if not rows:
            continue
        features = [values[i] for i in rows]
        decoded = [j for j, value in enumerate(features) if not torch.is_tensor(value)]
        if decoded:
            encoded = model.encoder(modality).encode([features[j] for j in decoded])
            for j, value in zip(decoded, encoded, strict=True):
                features[j] = value
        inputs[modality] = (torch.tensor(rows, device=device), torch.stack(features).to(device))
    return inputs
