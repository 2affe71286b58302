"""What every encoder gives the multimodal model, and the one error type for an input it cannot take.

An encoder (MERT for music, ViT for images, ViViT for video) is a frozen module loaded from its folder.
`shape` is (rows, width) of what it gives per input (MERT: hidden layers x hidden size; ViT, ViViT:
tokens x width): what the modality's bridge reads. `encode(inputs)` gives [B, rows, width] for a list of
decoded inputs (mono waveforms at `sample_rate`, [3, H, W] images in 0-1, [frames, H, W, 3] uint8 videos).
A bad input raises EncoderInputError, as AudioInputError (also an AudioError) or MediaInputError (also a
MediaError), so that callers that catch a bad file also catch a bad decoded input.
"""

from ..audio import AudioError
from ..media import MediaError


class EncoderInputError(ValueError):
    """A decoded input an encoder cannot take (wrong shape, type, range or frame count), said so that a user
    can act on it."""


class AudioInputError(EncoderInputError, AudioError):
    """A clip the music encoder cannot take: caught wherever bad audio is (batch jobs write an error record)."""


class MediaInputError(EncoderInputError, MediaError):
    """An image or video its encoder cannot take: caught wherever a bad image or video is."""
