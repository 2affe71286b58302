"""The small training loops the tiny models learn with: text for the tiny LLaMA, class labels for the
tiny MERT and the demo ViT (stand-ins for their pretraining), and the folding of a feature
standardisation into an encoder's last LayerNorm."""

import random

import numpy as np
import torch
import torch.nn.functional as F

from ..model import Transformer


def learn_text(model: Transformer, encoded: list[torch.Tensor], steps: int, batch_size: int = 32,
               lr: float = 3e-3, seed: int = 0):
    """Full-parameter next-token training on token sequences, in place."""
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for step in range(steps):
        batch = rng.sample(encoded, min(batch_size, len(encoded)))
        length = max(len(t) for t in batch)
        tokens = torch.zeros(len(batch), length, dtype=torch.long)
        targets = torch.full((len(batch), length), -100, dtype=torch.long)
        for row, t in enumerate(batch):
            tokens[row, : len(t)] = t
            targets[row, : len(t) - 1] = t[1:]
        for group in optimizer.param_groups:  # cosine decay to 10 %
            group["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(step / steps * torch.pi)).item()))
        loss = F.cross_entropy(model(tokens).flatten(0, 1), targets.flatten(), ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return loss.item()


def class_heads(width: int, targets: dict[str, torch.Tensor]) -> torch.nn.ModuleDict:
    """One classifier per label set over batch-normalised pooled features (the encoders' training heads)."""
    return torch.nn.ModuleDict({name: torch.nn.Sequential(torch.nn.BatchNorm1d(width, affine=False),
                                                          torch.nn.Linear(width, int(t.max()) + 1))
                                for name, t in targets.items()})


def learn_audio(encoder, clips: torch.Tensor, labels: dict[str, list[int]], steps: int, batch_size: int = 16,
                lr: float = 2e-3, seed: int = 0, crop: int | None = None):
    """Train a HubertModel so that the time-mean of its hidden states predicts each label set
    (one head per set, discarded afterwards), in place. The heads see batch-normalised features:
    clips differ by little next to what all clips share, and unscaled, the heads learn too slowly
    for the encoder to learn anything. With `crop` (samples), each step hears a random excerpt."""
    rng = random.Random(seed)
    targets = {name: torch.tensor(values) for name, values in labels.items()}
    heads = class_heads(encoder.config.hidden_size, targets)
    optimizer = torch.optim.AdamW([*encoder.parameters(), *heads.parameters()], lr=lr, weight_decay=0.0)
    # In training mode HubertModel masks time steps (SpecAugment) with numpy's global generator: seeded
    # here, so that the same seed trains the same encoder, and given back its state afterwards.
    numpy_state = np.random.get_state()
    np.random.seed(seed)
    encoder.train()
    for _ in range(steps):
        batch = rng.sample(range(len(clips)), min(batch_size, len(clips)))
        starts = [rng.randrange(clips.shape[1] - crop + 1) if crop else 0 for _ in batch]
        audio = torch.stack([clips[i, s: s + crop] if crop else clips[i] for i, s in zip(batch, starts, strict=True)])
        states = encoder(audio, output_hidden_states=True)
        pooled = torch.stack([h.mean(dim=1) for h in (*states.hidden_states[1:-1], states.last_hidden_state)]).mean(0)
        loss = sum(F.cross_entropy(head(pooled), targets[name][batch]) for name, head in heads.items())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    encoder.eval()
    np.random.set_state(numpy_state)
    return loss.item()


@torch.no_grad()
def standardize_output(encoder, clips: torch.Tensor, batch_size: int = 64):
    """Fold a per-channel standardisation of the clips' time-averaged last hidden state into the
    encoder's final LayerNorm (exact: its affine map is per channel), in place. The bridge then
    receives features that vary between clips by about 1 per channel instead of by a few hundredths."""
    encoder.eval()
    means = torch.cat([encoder(clips[i: i + batch_size]).last_hidden_state.mean(dim=1)
                       for i in range(0, len(clips), batch_size)])
    fold_standardization(encoder.encoder.layer_norm, means)


@torch.no_grad()
def fold_standardization(norm: torch.nn.LayerNorm, means: torch.Tensor) -> None:
    """Make the final LayerNorm `norm` output (x - mean) / std per channel of what it gave for `means`
    [N, width] (each input's token-averaged output), in place."""
    std = means.std(dim=0).clamp(min=1e-6)
    norm.bias.copy_((norm.bias - means.mean(dim=0)) / std)
    norm.weight.div_(std)


def learn_images(vit, pixels: torch.Tensor, labels: dict[str, list[int]], steps: int, batch_size: int = 32,
                 lr: float = 2e-3, seed: int = 0):
    """Train a ViTModel so that the token-mean of its last hidden state predicts each label set (one head per
    set, discarded afterwards), in place; `pixels` [N, 3, H, W] as its processor gives them. The stand-in for
    the real ViT's pretraining, as `learn_audio` is for MERT's."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    targets = {name: torch.tensor(values) for name, values in labels.items()}
    heads = class_heads(vit.config.hidden_size, targets)
    optimizer = torch.optim.AdamW([*vit.parameters(), *heads.parameters()], lr=lr, weight_decay=0.0)
    vit.train()
    for _ in range(steps):
        batch = rng.sample(range(len(pixels)), min(batch_size, len(pixels)))
        pooled = vit(pixel_values=pixels[batch]).last_hidden_state.mean(dim=1)
        loss = sum(F.cross_entropy(head(pooled), targets[name][batch]) for name, head in heads.items())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    vit.eval()
    return loss.item()
