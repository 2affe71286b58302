"""Image and video input: a file -> the pixels the ViT and ViViT encoders take.

`load_image` gives what the original got from `ToTensor()` on `PIL.Image.open(path)`: float32 [3, H, W]
in [0, 1]. `load_video` gives what it got from PyAV: `frames` consecutive frames as uint8 [T, H, W, 3]
RGB. Anything unusable raises one `MediaError` whose message names the file and what to do.
"""

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

VIDEO_STARTS = ("middle", "random")


class MediaError(ValueError):
    """An image or video that cannot be used, with a message a user can act on."""


def check_media_path(path: Path, kind: str) -> None:
    """Raise MediaError naming what is at `path` when it is no readable, non-empty file."""
    if path.is_symlink() and not path.exists():
        raise MediaError(f"{path} is a link to {os.readlink(path)}, which does not exist")
    if path.is_dir():
        raise MediaError(f"{path} is a folder; give the path of one {kind} file")
    if not path.exists():
        raise MediaError(f"{kind} file not found: {path}")
    if not path.is_file():
        raise MediaError(f"{path} is not a regular file (a pipe or a device?)")
    if path.stat().st_size == 0:
        raise MediaError(f"{path} is an empty file (0 bytes); the copy or download failed, fetch it again")


def _content(path: Path) -> str | None:
    """What a file that failed to decode holds, when its first bytes show a common mix-up."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError:  # unreadable: the decoder's own error says why
        return None
    signatures = {b"\x1aE\xdf\xa3": "a Matroska/WebM video", b"ID3": "an MP3 file", b"fLaC": "a FLAC file",
                  b"OggS": "an Ogg file", b"%PDF": "a PDF", b"PK\x03\x04": "a zip archive",
                  b"<!DOCTYPE": "an HTML page (a failed download?)", b"<html": "an HTML page (a failed download?)",
                  b"version https://git-lfs": "a Git LFS pointer (the clone has no git-lfs)"}
    found = next((what for magic, what in signatures.items() if head.startswith(magic)), None)
    if found:
        return found
    if head[4:8] == b"ftyp":
        return "an MP4/MOV file"
    if head.startswith(b"RIFF"):
        return {b"AVI ": "an AVI video", b"WAVE": "a WAV file", b"WEBP": "a WebP image"}.get(head[8:12])
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text"


def load_image(path) -> np.ndarray:
    """Any image Pillow reads, as float32 [3, H, W] in [0, 1].

    RGB pixels are `ToTensor()`'s exactly (x / 255). Grey images ("1", "L") become the grey channel
    repeated three times, as the original did; 16-bit grey is divided by 65535 (`ToTensor()` left it
    unscaled). Palette, CMYK and other modes are converted to RGB. Transparent images (RGBA, LA, palette
    with a transparent colour; the original failed on their 4 channels) are composited on white, as a
    viewer shows them on a white page: the colour stored under fully transparent pixels is arbitrary,
    often black, and would otherwise reach the encoder. The EXIF orientation is applied, so a phone photo
    is seen upright (the original ignored it; images without the tag are unaffected).
    """
    path = Path(path)
    check_media_path(path, "image")
    try:
        with Image.open(path) as image:
            image.load()
            return _channels_first(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        what = _content(path)
        why = f"it is {what}" if what else str(e)
        raise MediaError(f"cannot read {path} as an image ({why}); give a PNG, JPEG, WebP, BMP, GIF or TIFF "
                         "image") from e


def _channels_first(image: Image.Image) -> np.ndarray:
    if image.mode == "I" or image.mode.startswith("I;16"):
        grey = np.clip(np.asarray(image, dtype=np.float32) / 65535, 0, 1)
        return np.repeat(grey[None], 3, axis=0)
    if image.mode in ("1", "L"):
        return np.repeat(np.asarray(image.convert("L"), dtype=np.float32)[None] / 255, 3, axis=0)
    if image.has_transparency_data:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def _open_video(path: Path):
    """An open PyAV container holding at least one video stream."""
    import av  # with its ffmpeg libraries, loaded only when a video is read

    try:
        container = av.open(str(path))
    except av.FFmpegError as e:
        what = _content(path)
        why = f"it is {what}" if what else e.strerror
        raise MediaError(f"cannot open {path} as a video ({why}); give an MP4, MKV, WebM, AVI or MOV video") from e
    if not container.streams.video:
        streams = ", ".join(s.type for s in container.streams) or "nothing"
        container.close()
        raise MediaError(f"{path} has no video stream (it holds {streams}); give a file with moving pictures")
    container.streams.video[0].thread_type = "AUTO"  # decode on several threads; frames keep their order
    return container


def _decoded(container, path: Path):
    import av

    try:
        yield from container.decode(video=0)
    except av.FFmpegError as e:
        raise MediaError(f"cannot decode {path} ({e}); the file is damaged or truncated: fetch it again or "
                         "re-encode it, e.g. `ffmpeg -i in.mp4 out.mp4`") from e


def _first_frame(path: Path, total: int, frames: int, start, seed: int | None, rate) -> int:
    if total < frames:
        at = f" ({frames / float(rate):.1f} s at {float(rate):g} fps)" if rate else ""
        count = "1 frame (a still image?)" if total == 1 else f"{total} frames"
        raise MediaError(f"{path} has {count}, but the video encoder takes {frames} consecutive "
                         f"frames: give a clip of at least {frames} frames{at}")
    if start == "middle":
        return (total - frames) // 2
    if start == "random":
        # The original's draw: the window's end uniform over [frames, total), so the last frame is never
        # used. With exactly `frames` frames, where that draw fails, the one window there is.
        return int(np.random.default_rng(seed).integers(frames, total)) - frames if total > frames else 0
    if isinstance(start, (int, np.integer)) and not isinstance(start, bool):
        if not 0 <= start <= total - frames:
            raise MediaError(f"{path} has {total} frames: a window of {frames} starts at 0 to {total - frames}, "
                             f"not at {start}")
        return int(start)
    raise ValueError(f"start must be one of {VIDEO_STARTS} or a frame index, not {start!r}")


def load_video(path, frames: int = 32, start="middle", seed: int | None = None) -> np.ndarray:
    """`frames` consecutive frames of a video as uint8 [frames, H, W, 3] RGB (PyAV's `rgb24`).

    start: "middle" (the default, deterministic) takes the middle window; "random" draws the window as
    the original's data loader did (end uniform over [frames, total frames)), from
    `numpy.random.default_rng(seed)`: the same distribution, not the same numbers as the original's
    global numpy generator; an int is the index of the first frame. Frames are counted from the
    container's header, or by decoding when it does not say (Matroska/WebM).
    """
    path = Path(path)
    check_media_path(path, "video")
    with _open_video(path) as container:
        stream = container.streams.video[0]
        total = stream.frames or sum(1 for _ in _decoded(container, path))
        first = _first_frame(path, total, frames, start, seed, stream.average_rate)
    with _open_video(path) as container:
        picked = []
        for i, frame in enumerate(_decoded(container, path)):
            if i >= first:
                picked.append(frame.to_ndarray(format="rgb24"))
                if len(picked) == frames:
                    break
    if len(picked) < frames:
        raise MediaError(f"{path}: its header says {total} frames, but only {first + len(picked)} decode; the "
                         "file is truncated: fetch it again or re-encode it, e.g. `ffmpeg -i in.mp4 out.mp4`")
    return np.stack(picked)


def video_seconds(path) -> float:
    """A video's duration in seconds (M2UGen makes music as long as the video): the container's, else
    the video stream's frame count over its rate."""
    path = Path(path)
    check_media_path(path, "video")
    with _open_video(path) as container:
        if container.duration:
            return container.duration / 1_000_000  # PyAV's time base: microseconds
        stream = container.streams.video[0]
        total = stream.frames or sum(1 for _ in _decoded(container, path))
        return total / float(stream.average_rate or 25)
