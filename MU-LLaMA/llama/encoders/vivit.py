"""The ViViT video encoder, built on `transformers.VivitModel` and `VivitImageProcessor` (numpy/PIL).

MuMu-LLaMA hands its video bridge the whole last hidden state of `num_frames` consecutive frames:
[B, (frames / t) * (size / h) * (size / w) + 1, hidden] for tubelets [t, h, w] ([B, 3137, 768] for
ViViT-B 16x2 on 32 frames of 224x224). Frames arrive as `media.load_video` gives them, uint8
[T, H, W, 3], and go through the checkpoint's processor as the original called it: shortest edge
resized, centre crop, then x / 127.5 - 1 *and* mean/std 0.5, so the model sees values in [-3, 1].

google/vivit-b-16x2-kinetics400 is a classifier whose weights sit under `vivit.`; it loads here without
its head (and any pooler), which the last hidden state does not use.
"""

import numpy as np
import torch
from transformers import VivitConfig, VivitImageProcessor, VivitModel

from ..files import CheckpointError
from .base import MediaInputError
from .vit import VisionEncoder, load_encoder_weights, read_encoder_folder


class ViViT(VisionEncoder):
    """A frozen ViViT, taking clips as `load_video` gives them: uint8 [frames, H, W, 3] RGB, of any frame
    sizes, exactly `frames` of them."""

    batch_size = 4

    def __init__(self, config: VivitConfig, processor: VivitImageProcessor):
        super().__init__(VivitModel(config, add_pooling_layer=False), processor)

    @property
    def frames(self) -> int:
        """The frames per clip the model takes (32 for ViViT-B 16x2): its position embeddings fix it."""
        return self.model.config.num_frames

    @property
    def tokens(self) -> int:
        """Tubelets plus the class token: 3137 for ViViT-B 16x2."""
        c = self.model.config
        t, h, w = c.tubelet_size
        return (c.num_frames // t) * (c.image_size // h) * (c.image_size // w) + 1

    def check(self, i: int, a: np.ndarray) -> None:
        if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8:
            raise MediaInputError(f"video {i}: expected uint8 RGB frames [T, H, W, 3] (what load_video gives), got "
                                  f"{a.dtype} {list(a.shape)}")
        if len(a) != self.frames:
            raise MediaInputError(f"video {i} has {len(a)} frames; this ViViT takes exactly {self.frames}: load it "
                                  f"with load_video(path, frames={self.frames})")

    def pixels(self, videos: list) -> torch.Tensor:
        return self.processor([list(video) for video in videos], return_tensors="pt",
                              input_data_format="channels_last").pixel_values


def load_vivit(path, device="cpu", dtype=torch.float32) -> ViViT:
    """A ViViT checkpoint folder (config.json, model.safetensors or pytorch_model.bin,
    preprocessor_config.json), e.g. google/vivit-b-16x2-kinetics400, in eval mode without gradients."""
    folder, config, preprocessor, state = read_encoder_folder(path, "--vivit_path", "vivit")
    config = VivitConfig.from_dict(config)
    processor = VivitImageProcessor.from_dict(preprocessor)
    size = (processor.crop_size["height"], processor.crop_size["width"])
    if size != (config.image_size, config.image_size):
        raise CheckpointError(f"{folder}: preprocessor_config.json crops frames to {size[0]}x{size[1]}, but "
                              f"config.json's model takes {config.image_size}x{config.image_size}")
    with torch.device("meta"):  # no random init: the checkpoint's tensors are assigned
        vivit = ViViT(config, processor)
    load_encoder_weights(vivit.model, state, folder)
    return vivit.to(device=device, dtype=dtype).requires_grad_(False).eval()
