"""Tiny ViT and ViViT checkpoints, and test images and videos.

The folders hold what `save_pretrained` writes for google/vit-base-patch16-224-in21k (a ViTModel with its
pooler) and google/vivit-b-16x2-kinetics400 (a video classifier, weights under `vivit.`): config.json
with the real checkpoints' fields, the weights under transformers 4's names (which transformers 5 still
writes), preprocessor_config.json with the processors' fields, sized to the tiny models. ViViT keeps
the real 32 frames and 16x16 tubelets of 2 frames: 16 x 2 x 2 + 1 = 65 tokens on 32x32 crops.
"""

import json
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image
from transformers import (
    ViTConfig,
    ViTImageProcessorPil,
    ViTModel,
    VivitConfig,
    VivitForVideoClassification,
    VivitImageProcessor,
)

from .learn import fold_standardization, learn_images

# The fields of the real config.json files (less their label maps), at a tiny size.
TINY_VIT_CONFIG = {
    "architectures": ["ViTModel"], "model_type": "vit", "attention_probs_dropout_prob": 0.0, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0, "hidden_size": 32, "image_size": 32, "initializer_range": 0.02,
    "intermediate_size": 64, "layer_norm_eps": 1e-12, "num_attention_heads": 4, "num_channels": 3,
    "num_hidden_layers": 2, "patch_size": 16, "transformers_version": "4.6.0.dev0",
}
TINY_VIVIT_CONFIG = {
    "architectures": ["VivitForVideoClassification"], "model_type": "vivit", "attention_probs_dropout_prob": 0.0,
    "hidden_act": "gelu_fast", "hidden_dropout_prob": 0.0, "hidden_size": 32, "image_size": 32,
    "initializer_range": 0.02, "intermediate_size": 64, "layer_norm_eps": 1e-06, "num_attention_heads": 4,
    "num_channels": 3, "num_frames": 32, "num_hidden_layers": 2, "qkv_bias": True, "torch_dtype": "float32",
    "transformers_version": "4.27.0.dev0", "tubelet_size": [2, 16, 16], "video_size": [32, 32, 32],
    "id2label": {str(i): f"LABEL_{i}" for i in range(400)}, "label2id": {f"LABEL_{i}": i for i in range(400)},
}


def _randomize(model: torch.nn.Module, seed: int) -> None:
    """Random values everywhere, norms and biases included, so that a swapped or dropped tensor shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layernorm" in name and name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=generator) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.2)


def _write(folder, model, config: dict, processor) -> Path:
    folder = Path(folder)
    model.save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    processor.save_pretrained(folder)
    return folder


def write_tiny_vit(folder, seed: int = 0, images: torch.Tensor | None = None, labels: dict | None = None,
                   steps: int = 0, **overrides) -> Path:
    """A ViT checkpoint folder: config.json, model.safetensors (with the pooler), preprocessor_config.json
    (resize to the model's size, x / 255, mean/std 0.5). With `images` (float [N, 3, H, W] in [0, 1]),
    `labels` ({name: class indices per image}) and `steps`, the encoder first learns to tell those classes
    apart (`learn_images`), then its output is standardised over the images (the demo ViT)."""
    config = {**TINY_VIT_CONFIG, **overrides}
    size = config["image_size"]
    processor = ViTImageProcessorPil(size={"height": size, "width": size})
    model = ViTModel(ViTConfig(**config))
    _randomize(model, seed)
    if images is not None and steps:
        pixels = processor(images=list(images.numpy()), do_rescale=False, return_tensors="pt",
                           input_data_format="channels_first").pixel_values
        learn_images(model, pixels, labels, steps, seed=seed)
        with torch.no_grad():
            fold_standardization(model.layernorm, model(pixel_values=pixels).last_hidden_state.mean(dim=1))
    return _write(folder, model, config, processor)


def write_tiny_vivit(folder, seed: int = 0) -> Path:
    """A ViViT checkpoint folder: config.json, model.safetensors (a 400-class classifier), preprocessor_config.json
    (shortest edge to 36, centre crop 32x32, x / 127.5 - 1, mean/std 0.5)."""
    model = VivitForVideoClassification(VivitConfig(**TINY_VIVIT_CONFIG))
    _randomize(model, seed)
    processor = VivitImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32})
    return _write(folder, model, TINY_VIVIT_CONFIG, processor)


def write_image(path, mode: str = "RGB", height: int = 24, width: int = 40, seed: int = 0,
                format: str | None = None) -> Image.Image:
    """Random pixels saved as `mode` ("RGB", "L", "P", "RGBA", "LA", "I;16", "1"); `format` overrides the one
    the suffix names. Returns the image as written (a JPEG's pixels differ after its lossy coding)."""
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    else:
        rgba = Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8), "RGBA")
        image = rgba.convert("RGB").quantize(16) if mode == "P" else rgba.convert(mode)
    image.save(path, format=format)
    return image


def write_video(path, frames: int, height: int = 24, width: int = 40, seed: int = 0, rate: int = 25) -> np.ndarray:
    """Random frames as a lossless FFV1 video (Matroska, AVI, MP4 by the suffix; Matroska's header holds no
    frame count). Returns the frames, uint8 [frames, height, width, 3], which decode back exactly."""
    pixels = np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "bgr0"
        for frame in pixels:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return pixels
