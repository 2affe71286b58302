"""Audio input: decode any common file, down-mix to mono, resample to the encoder's rate.

Unreadable, empty or non-finite input raises one `AudioError` whose message says what to do.
"""

import os
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


# The first bytes of files that are often mistaken for audio, and what they are.
_NOT_AUDIO = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image", b"%PDF": "a PDF",
              b"PK\x03\x04": "a zip archive", b"<!DOCTYPE": "an HTML page", b"<html": "an HTML page",
              b"version https://git-lfs": "a Git LFS pointer (the clone has no git-lfs)"}


def check_audio_path(path: Path) -> None:
    """Raise AudioError naming what is at `path` when it is no readable file."""
    if path.is_symlink() and not path.exists():
        try:
            path.resolve(strict=True)
        except FileNotFoundError:
            raise AudioError(f"{path} is a link to {os.readlink(path)}, which does not exist") from None
        except (RuntimeError, OSError):  # Python < 3.13 says RuntimeError for a loop
            raise AudioError(f"{path} is a symbolic link loop: it leads back to itself") from None
    if path.is_dir():
        raise AudioError(f"{path} is a folder, not an audio file (batch_inference.py --input takes folders)")
    if not path.exists():
        raise AudioError(f"audio file not found: {path}")
    if not path.is_file():
        raise AudioError(f"{path} is not a regular file (a pipe or a device?)")
    if path.stat().st_size == 0:
        raise AudioError(f"{path} is an empty file (0 bytes)")


def load_audio(path, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read WAV/FLAC/OGG/MP3 (anything libsndfile decodes) as float32 mono at `target_rate`."""
    path = Path(path)
    check_audio_path(path)
    try:
        with path.open("rb") as f:  # a file object: soundfile cannot encode names that are not valid UTF-8
            samples, rate = soundfile.read(f, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as e:
        with path.open("rb") as f:
            head = f.read(16)
        kind = next((what for magic, what in _NOT_AUDIO.items() if head.startswith(magic)), None)
        if kind:
            raise AudioError(f"{path} is not audio: it is {kind}") from e
        raise AudioError(f"cannot decode {path} as audio ({e}); supported: WAV, FLAC, OGG, MP3. "
                         "Convert other formats first, e.g. `ffmpeg -i in.m4a out.wav`") from e
    return to_mono(samples, rate, target_rate, source=str(path))
