import json
import shutil

import av
import numpy as np
import pytest
import soundfile
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import ViTConfig, ViTImageProcessorPil, ViTModel, VivitConfig, VivitImageProcessor, VivitModel

from llama import CheckpointError
from llama.encoders.base import EncoderInputError
from llama.encoders.vit import ViT, encoder_state, load_vit
from llama.encoders.vivit import ViViT, load_vivit
from llama.media import MediaError, load_image, load_video
from llama.testing.vision import write_image, write_tiny_vit, write_tiny_vivit, write_video


@pytest.fixture(scope="module")
def vit_folder(tmp_path_factory):
    return write_tiny_vit(tmp_path_factory.mktemp("vit"))


@pytest.fixture(scope="module")
def vivit_folder(tmp_path_factory):
    return write_tiny_vivit(tmp_path_factory.mktemp("vivit"))


def to_tensor(path) -> torch.Tensor:
    """The original's image steps: PIL.Image.open, torchvision's ToTensor, one channel repeated to three."""
    pixels = torch.from_numpy(np.array(Image.open(path))).float().div(255)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.permute(2, 0, 1)
    return pixels.repeat(3, 1, 1) if pixels.shape[0] == 1 else pixels


def decode_all(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_vit_features_equal_transformers_on_the_original_inputs(vit_folder, tmp_path):
    paths = [tmp_path / "a.png", tmp_path / "b.jpg", tmp_path / "grey.png"]
    write_image(paths[0], height=24, width=40)
    write_image(paths[1], height=50, width=30, seed=1)
    write_image(paths[2], "L", height=32, width=32, seed=2)
    vit = load_vit(vit_folder)
    ours = vit.features([load_image(p) for p in paths], batch_size=2)
    assert ours.shape == (3, 5, 32) and ours.dtype == torch.float32

    reference = ViTModel.from_pretrained(vit_folder).eval()
    processor = ViTImageProcessorPil.from_pretrained(vit_folder)
    with torch.no_grad():  # one image at a time, as the original
        theirs = torch.cat([reference(**processor(images=to_tensor(p), do_rescale=False, return_tensors="pt"))
                            .last_hidden_state for p in paths])
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_vivit_features_equal_transformers_on_the_original_inputs(vivit_folder, tmp_path):
    write_video(tmp_path / "wide.mkv", 40, height=24, width=40)
    write_video(tmp_path / "tall.mp4", 33, height=40, width=24, seed=1)
    vivit = load_vivit(vivit_folder)
    ours = vivit.features([load_video(tmp_path / "wide.mkv"), load_video(tmp_path / "tall.mp4")])
    assert ours.shape == (2, 65, 32)

    reference = VivitModel.from_pretrained(vivit_folder).eval()
    processor = VivitImageProcessor.from_pretrained(vivit_folder)
    clips = [decode_all(tmp_path / "wide.mkv")[4:36], decode_all(tmp_path / "tall.mp4")[0:32]]  # the middle 32
    with torch.no_grad():
        theirs = torch.cat([reference(**processor(list(clip), return_tensors="pt")).last_hidden_state
                            for clip in clips])
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_token_counts_come_from_the_config(vit_folder, vivit_folder):
    vit, vivit = load_vit(vit_folder), load_vivit(vivit_folder)
    assert (vit.tokens, vit.width) == (5, 32)
    assert (vivit.tokens, vivit.width, vivit.frames) == (65, 32, 32)
    with torch.device("meta"):  # the real models' shapes, without their weights
        assert ViT(ViTConfig(image_size=224, patch_size=16), ViTImageProcessorPil()).tokens == 197
        real = ViViT(VivitConfig(num_frames=32, tubelet_size=[2, 16, 16], image_size=224), VivitImageProcessor())
        assert (real.tokens, real.frames, real.width) == (3137, 32, 768)


def test_hub_layouts_load_alike(vit_folder, tmp_path):
    """The hub's own in21k folder: pytorch_model.bin and the 2021 preprocessor_config.json (size as an int)."""
    hub = shutil.copytree(vit_folder, tmp_path / "hub")
    torch.save(load_file(hub / "model.safetensors"), hub / "pytorch_model.bin")
    (hub / "model.safetensors").unlink()
    (hub / "preprocessor_config.json").write_text(json.dumps(
        {"do_normalize": True, "do_resize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3, "size": 32}))
    write_image(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png")
    assert torch.equal(load_vit(hub).features([image]), load_vit(vit_folder).features([image]))
    # transformers 5's own names pass through unchanged (and the pooler is left out)
    config = ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    state = ViTModel(config).state_dict()
    assert set(encoder_state(state, "vit")) == {k for k in state if not k.startswith("pooler.")}


def test_image_modes_give_three_channels(tmp_path):
    grey = np.asarray(write_image(tmp_path / "l.png", "L"), dtype=np.float32) / 255
    loaded = load_image(tmp_path / "l.png")
    assert loaded.shape == (3, 24, 40) and all(np.array_equal(c, grey) for c in loaded)
    write_image(tmp_path / "b.png", "1")
    assert set(np.unique(load_image(tmp_path / "b.png"))) == {0.0, 1.0}
    deep = np.asarray(write_image(tmp_path / "i16.png", "I;16"), dtype=np.float32) / 65535
    assert all(np.allclose(c, deep) for c in load_image(tmp_path / "i16.png"))

    palette = write_image(tmp_path / "p.png", "P")
    expected = np.asarray(palette.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255
    assert np.array_equal(load_image(tmp_path / "p.png"), expected)

    rgba = np.asarray(write_image(tmp_path / "rgba.png", "RGBA"), dtype=np.float32) / 255
    alpha = rgba[..., 3:]
    on_white = (rgba[..., :3] * alpha + (1 - alpha)).transpose(2, 0, 1)
    loaded = load_image(tmp_path / "rgba.png")
    assert loaded.shape == (3, 24, 40) and np.abs(loaded - on_white).max() <= 1 / 255 + 1e-6
    write_image(tmp_path / "la.png", "LA")
    la = load_image(tmp_path / "la.png")
    assert np.array_equal(la[0], la[1]) and np.array_equal(la[1], la[2])


def test_jpeg_misnamed_png_and_exif_orientation(tmp_path):
    write_image(tmp_path / "photo.jpg")
    assert torch.equal(torch.from_numpy(load_image(tmp_path / "photo.jpg")), to_tensor(tmp_path / "photo.jpg"))
    written = write_image(tmp_path / "png.jpg", format="PNG")
    assert np.array_equal(load_image(tmp_path / "png.jpg"), np.asarray(written).transpose(2, 0, 1) / np.float32(255))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.open(tmp_path / "photo.jpg").save(tmp_path / "turned.jpg", exif=exif)
    assert load_image(tmp_path / "turned.jpg").shape == (3, 40, 24)


@pytest.mark.parametrize("case", ["text", "missing", "folder", "empty", "video"])
def test_unusable_images_name_the_file(tmp_path, case):
    path = tmp_path / "picture.png"
    if case == "text":
        path.write_text("not an image at all\n")
    elif case == "folder":
        path.mkdir()
    elif case == "empty":
        path.touch()
    elif case == "video":
        write_video(tmp_path / "clip.mkv", 2)
        (tmp_path / "clip.mkv").rename(path)
    with pytest.raises(MediaError, match=f"{path}.*" + {"text": "it is text", "missing": "", "folder": "folder",
                                                         "empty": "empty", "video": "Matroska"}[case]) as error:
        load_image(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("suffix", ["mkv", "avi"])  # Matroska's header has no frame count, AVI's has
def test_lossless_video_decodes_to_the_written_pixels(tmp_path, suffix):
    pixels = write_video(tmp_path / f"v.{suffix}", 40)
    assert np.array_equal(load_video(tmp_path / f"v.{suffix}", frames=40), pixels)
    middle = load_video(tmp_path / f"v.{suffix}")
    assert middle.dtype == np.uint8 and np.array_equal(middle, pixels[4:36])
    assert np.array_equal(load_video(tmp_path / f"v.{suffix}", start=8), pixels[8:40])


def test_random_start_is_seeded_and_never_takes_the_last_frame(tmp_path):
    pixels = write_video(tmp_path / "v.mkv", 40, height=8, width=8)
    assert len({frame.tobytes() for frame in pixels}) == 40  # all differ: a window's first frame tells its start

    def start(seed):
        clip = load_video(tmp_path / "v.mkv", start="random", seed=seed)
        at = next(i for i in range(40) if np.array_equal(pixels[i], clip[0]))
        assert np.array_equal(clip, pixels[at:at + 32])
        return at

    assert start(7) == start(7)
    starts = {start(seed) for seed in range(12)}
    assert len(starts) > 3 and max(starts) <= 40 - 32 - 1
    assert np.array_equal(load_video(tmp_path / "v.mkv", frames=40, start="random"), pixels)


def test_unusable_videos_name_the_file_and_the_fix(tmp_path):
    write_video(tmp_path / "short.mkv", 10)
    with pytest.raises(MediaError, match=r"short.mkv has 10 frames.* takes 32 .*\(1.3 s at 25 fps\)"):
        load_video(tmp_path / "short.mkv")
    write_video(tmp_path / "v.avi", 40)
    with pytest.raises(MediaError, match="starts at 0 to 8, not at 9"):
        load_video(tmp_path / "v.avi", start=9)
    with pytest.raises(ValueError, match="start must be"):
        load_video(tmp_path / "v.avi", start="first")
    soundfile.write(tmp_path / "sound.wav", np.zeros(2400, np.float32), 24000)
    with pytest.raises(MediaError, match="sound.wav has no video stream"):
        load_video(tmp_path / "sound.wav")
    (tmp_path / "notes.mp4").write_text("not a video\n")
    with pytest.raises(MediaError, match="notes.mp4 as a video \\(it is text\\)"):
        load_video(tmp_path / "notes.mp4")
    write_image(tmp_path / "still.png")
    with pytest.raises(MediaError, match="has 1 frame \\(a still image\\?\\)"):
        load_video(tmp_path / "still.png")
    with pytest.raises(MediaError, match="video file not found"):
        load_video(tmp_path / "gone.mp4")


def test_encoders_refuse_wrong_inputs_and_folders(vit_folder, vivit_folder, tmp_path):
    vivit = load_vivit(vivit_folder)
    with pytest.raises(EncoderInputError, match="video 0 has 16 frames; this ViViT takes exactly 32"):
        vivit.features([np.zeros((16, 24, 40, 3), np.uint8)])
    vit = load_vit(vit_folder)
    with pytest.raises(EncoderInputError, match="expected float pixels"):
        vit.features([np.zeros((24, 40, 3), np.uint8)])
    with pytest.raises(MediaError, match="divide 8-bit pixels by 255"):
        vit.features([np.full((3, 24, 40), 200.0, np.float32)])
    with pytest.raises(CheckpointError, match="model_type 'vivit'; --vit_path takes a 'vit'"):
        load_vit(vivit_folder)
    with pytest.raises(CheckpointError, match="no such file or folder"):
        load_vit(tmp_path / "nothing")
    bare = shutil.copytree(vit_folder, tmp_path / "bare")
    (bare / "preprocessor_config.json").unlink()
    with pytest.raises(CheckpointError, match="has no preprocessor_config.json"):
        load_vit(bare)
