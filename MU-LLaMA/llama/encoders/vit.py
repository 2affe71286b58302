"""The ViT image encoder, built on `transformers.ViTModel` and its PIL image processor.

MuMu-LLaMA hands its image bridge the whole last hidden state, [B, (image_size / patch)^2 + 1, hidden]
([B, 197, 768] for ViT-B/16 at 224). Images arrive as `media.load_image` gives them, float [3, H, W] in
[0, 1], and go through the checkpoint's processor as the original called it, with `do_rescale=False`:
resized (bilinear, through 8-bit PIL), then normalised with the checkpoint's mean and std.

The hub checkpoints come in two layouts: a bare ViTModel with a pooler (google/vit-base-patch16-224-in21k)
and a classifier whose weights sit under `vit.` (google/vit-base-patch16-224). Both load here without
their heads, which the last hidden state does not use.
"""

from pathlib import Path

import numpy as np
import torch
from transformers import ViTConfig, ViTImageProcessorPil, ViTModel

from ..files import CheckpointError, read_json, safetensors_load, torch_load
from ..paths import resolve
from .base import MediaInputError

# transformers 4 names (every hub checkpoint, the original's checkpoint.pth) -> transformers 5 names, in order.
_RENAMES = [("encoder.layer.", "layers."), ("attention.attention.query", "attention.q_proj"),
            ("attention.attention.key", "attention.k_proj"), ("attention.attention.value", "attention.v_proj"),
            ("attention.output.dense", "attention.o_proj"), ("intermediate.dense", "mlp.fc1"),
            ("output.dense", "mlp.fc2")]


def encoder_state(state: dict, prefix: str) -> dict:
    """A ViT or ViViT state dict under transformers 5's ViTModel/VivitModel names, from transformers 4's or
    5's, with or without the classifier's `prefix.`; pooler and classifier weights are left out."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix(prefix + ".")
        if key.startswith(("pooler.", "classifier.")):
            continue
        for old, new in _RENAMES:
            key = key.replace(old, new)
        out[key] = value
    return out


def read_encoder_folder(path, what: str, model_type: str) -> tuple[Path, dict, dict, dict]:
    """(folder, config.json, preprocessor_config.json, state dict under transformers 5 names) of an HF
    encoder folder as `save_pretrained` writes it; also a hub id, an HF cache folder or a file inside."""
    folder = resolve(path, what)
    if folder.is_file():
        folder = folder.parent
    for name in ("config.json", "preprocessor_config.json"):
        if not (folder / name).exists():
            raise CheckpointError(f"{folder} has no {name}: pass the folder of a {model_type} checkpoint as {what} "
                                  "(config.json, preprocessor_config.json and the weights)")
    config = read_json(folder / "config.json")
    if config.get("model_type") != model_type:
        raise CheckpointError(f"{folder / 'config.json'} has model_type {config.get('model_type')!r}; {what} takes "
                              f"a {model_type!r} checkpoint")
    present = [f for f in (folder / "model.safetensors", folder / "pytorch_model.bin") if f.exists() or f.is_symlink()]
    if not present:
        raise CheckpointError(f"{folder} has no model.safetensors or pytorch_model.bin")
    state = safetensors_load(present[0]) if present[0].suffix == ".safetensors" else torch_load(present[0])
    return folder, config, read_json(folder / "preprocessor_config.json"), encoder_state(state, model_type)


def load_encoder_weights(model: torch.nn.Module, state: dict, folder: Path) -> None:
    """Assign `state` to `model` (built on the meta device), naming the first tensors that do not fit."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [f"{k} is {list(state[k].shape)}, not {list(v.shape)}"
                for k, v in expected.items() if k in state and state[k].shape != v.shape]
    found = (("missing", missing), ("unexpected", unexpected), ("wrong shape:", reshaped))
    problems = [f"{what} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}" for what, keys in found if keys]
    if problems:
        raise CheckpointError(f"the weights in {folder} do not fit its config.json: {'; '.join(problems)}")
    model.load_state_dict(state, strict=True, assign=True)


class VisionEncoder(torch.nn.Module):
    """A frozen transformers vision model and its processor (ViT, ViViT): `features(inputs)` -> [B, tokens,
    width], the last hidden states, fp32 on the CPU. A subclass says how many tokens it gives, which
    inputs it takes (`check`) and how its processor turns a chunk of them into pixel values (`pixels`).
    `tokens`, `check` and `pixels` are each subclass's."""

    batch_size = 16

    def __init__(self, model, processor):
        super().__init__()
        self.model = model
        self.processor = processor

    @property
    def width(self) -> int:
        return self.model.config.hidden_size

    @property
    def shape(self) -> tuple[int, int]:
        """(tokens, width) of what `encode` gives per input (encoders/base.py)."""
        return self.tokens, self.width

    def encode(self, inputs: list, mode=None) -> torch.Tensor:
        """`features` of the inputs (`mode` is music's)."""
        return self.features(inputs)

    @torch.no_grad()
    def features(self, inputs: list, batch_size: int | None = None) -> torch.Tensor:
        for i, x in enumerate(inputs):
            self.check(i, np.asarray(x))
        param = next(self.model.parameters())
        step = batch_size or self.batch_size
        out = []
        for i in range(0, len(inputs), step):
            pixels = self.pixels(list(inputs[i:i + step])).to(param.device, param.dtype)
            out.append(self.model(pixel_values=pixels).last_hidden_state.float().cpu())
        return torch.cat(out)


class ViT(VisionEncoder):
    """A frozen ViT, taking images as `load_image` gives them: float [3, H, W] in [0, 1], of any sizes."""

    def __init__(self, config: ViTConfig, processor: ViTImageProcessorPil):
        super().__init__(ViTModel(config, add_pooling_layer=False), processor)

    @property
    def tokens(self) -> int:
        """Patches plus the class token: 197 for ViT-B/16 at 224."""
        return (self.model.config.image_size // self.model.config.patch_size) ** 2 + 1

    def check(self, i: int, a: np.ndarray) -> None:
        if a.ndim != 3 or a.shape[0] != 3 or not np.issubdtype(a.dtype, np.floating):
            raise MediaInputError(f"image {i}: expected float pixels [3, H, W] in [0, 1] (what load_image gives), "
                                  f"got {a.dtype} {list(a.shape)}")
        if a.min() < 0 or a.max() > 1:
            raise MediaInputError(f"image {i}: pixels lie in [{a.min():g}, {a.max():g}], not [0, 1]; divide 8-bit "
                                  "pixels by 255")

    def pixels(self, images: list) -> torch.Tensor:
        return self.processor(images=images, do_rescale=False, return_tensors="pt",
                              input_data_format="channels_first").pixel_values


def load_vit(path, device="cpu", dtype=torch.float32) -> ViT:
    """A ViT checkpoint folder (config.json, model.safetensors or pytorch_model.bin,
    preprocessor_config.json), e.g. google/vit-base-patch16-224(-in21k), in eval mode without gradients."""
    folder, config, preprocessor, state = read_encoder_folder(path, "--vit_path", "vit")
    config = ViTConfig.from_dict(config)
    processor = ViTImageProcessorPil.from_dict(preprocessor)
    size = (processor.size.height, processor.size.width)
    if size != (config.image_size, config.image_size):
        raise CheckpointError(f"{folder}: preprocessor_config.json resizes images to {size[0]}x{size[1]}, but "
                              f"config.json's model takes {config.image_size}x{config.image_size}")
    with torch.device("meta"):  # no random init: the checkpoint's tensors are assigned
        vit = ViT(config, processor)
    load_encoder_weights(vit.model, state, folder)
    return vit.to(device=device, dtype=dtype).requires_grad_(False).eval()
