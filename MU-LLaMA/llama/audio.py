"""Audio input: decode any common file, down-mix to mono, resample to the encoder's rate.

Unreadable, empty or non-finite input raises one `AudioError` whose message says what to do.
"""

from pathlib import Path

import numpy as np
import soundfile
import soxr

SAMPLE_RATE = 24000  # MERT-v1's rate


class AudioError(ValueError):
    """Audio that cannot be used, with a message a user can act on."""


def to_mono(samples: np.ndarray, sample_rate: int, target_rate: int = SAMPLE_RATE, source: str = "audio") -> np.ndarray:
    """[T] or [T, channels] samples -> float32 mono at `target_rate` (channel mean, soxr HQ)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if samples.ndim != 1:
        raise AudioError(f"{source}: expected samples shaped [time] or [time, channels], got {samples.shape}")
    if samples.size == 0:
        raise AudioError(f"{source} holds no samples (zero-length audio); give a clip with sound in it")
    if not np.isfinite(samples).all():
        raise AudioError(f"{source} contains NaN or infinite samples; re-export it as ordinary PCM audio")
    if sample_rate != target_rate:
        samples = soxr.resample(samples, sample_rate, target_rate, quality="HQ").astype(np.float32)
    return samples


def load_audio(path, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read WAV/FLAC/OGG/MP3 (anything libsndfile decodes) as float32 mono at `target_rate`."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"{path} is an empty file")
    try:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"cannot decode {path} as audio ({e}); supported: WAV, FLAC, OGG, MP3. "
                         "Convert other formats first, e.g. `ffmpeg -i in.m4a out.wav`") from e
    return to_mono(samples, rate, target_rate, source=str(path))
