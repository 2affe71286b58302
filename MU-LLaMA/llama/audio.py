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
        why = getattr(e, "error_string", e)  # libsndfile's own words, without the file object's repr
        raise AudioError(f"cannot decode {path} as audio ({why}); supported: WAV, FLAC, OGG, MP3. "
                         "Convert other formats first, e.g. `ffmpeg -i in.m4a out.wav`") from e
    return to_mono(samples, rate, target_rate, source=str(path))


# A clip whose encoded part is quieter than this (RMS, dB relative to full scale) carries no music: digital
# silence is -inf, a quiet recording's noise floor about -70; quiet music sits around -40 to -20.
SILENCE_DBFS = -60.0


def quiet_warnings(wave: np.ndarray, sample_rate: int, encoded_seconds: float | None, min_samples: int) -> list[str]:
    """Why the encoder may hear no music in `wave`: too short for one encoder frame, or silent over the
    part it encodes (the first `encoded_seconds`, or all of it). The model is still asked."""
    warnings = []
    if len(wave) < min_samples:
        warnings.append(f"the clip is {1000 * len(wave) / sample_rate:.1f} ms long, shorter than one encoder frame "
                        f"({min_samples} samples): it is padded with silence")
    part = wave[: round(encoded_seconds * sample_rate)] if encoded_seconds else wave
    rms = float(np.sqrt(np.mean(np.square(part, dtype=np.float64)))) if len(part) else 0.0
    level = 20 * np.log10(rms) if rms > 0 else -np.inf
    if level < SILENCE_DBFS:
        clipped = encoded_seconds is not None and len(wave) > len(part)
        where = f"its first {encoded_seconds:g} s (what --audio_mode upstream encodes)" if clipped else "the clip"
        warnings.append(f"silent: {where} is at {level:.0f} dBFS, below {SILENCE_DBFS:.0f}; the model is still asked, "
                        "but there is no music for it to describe")
    return warnings


def wav_truncation(path) -> str | None:
    """For a WAV file whose data chunk announces more bytes than the file holds (a copy or download cut
    short), what is missing; None otherwise, and for other formats (their decoders cannot tell)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        size = os.fstat(f.fileno()).st_size
        position = 12
        while position + 8 <= size:
            f.seek(position)
            chunk, length = f.read(4), int.from_bytes(f.read(4), "little")
            if chunk == b"data":
                have = size - position - 8
                if length != 0xFFFFFFFF and length > have:  # 0xFFFFFFFF: a stream written without a length
                    return (f"truncated: its header announces {length} bytes of samples, the file holds {have} "
                            f"({have / length:.0%}); only that part is heard")
                return None
            position += 8 + length + (length & 1)
    return None
