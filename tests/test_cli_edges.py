"""What a user meets at the edges of the command lines: every flag explained with its default, one default
temperature, a long prompt, an --output_dir that cannot take music, Ctrl-C while music is written, a weight
file this user may not read, and image flags given to the music-only demo: one clear line each, nothing lost."""

import contextlib
import importlib
import io
import os
import re
import sys

import pytest
import soundfile

from llama.checkpoints import read_llama
from llama.files import CheckpointError
from llama.generation import TEMPERATURE

from conftest import ROOT, run_here

sys.path[:0] = [str(ROOT / "MU-LLaMA"), str(ROOT / "ModelEvaluations")]

import inference  # noqa: E402

SCRIPTS = {"inference": "MU-LLaMA", "gradio_app": "MU-LLaMA", "batch_inference": "MU-LLaMA", "train": "MU-LLaMA",
           "generate_mumu": "ModelEvaluations", "generate_mullama": "ModelEvaluations"}


def help_text(name: str) -> str:
    module = importlib.import_module(name)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        module.main(["--help"])
    return out.getvalue()


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_explains_every_flag_and_the_one_default_temperature(name):
    text = help_text(name)
    options = re.findall(r"^  (-[^\n]*)((?:\n {6,}[^\n]*)*)", text, re.M)
    assert len(options) > 5
    bare = [head.split()[0] for head, rest in options if not re.search(r"\S\s{2,}\S", head) and not rest.strip()]
    assert not bare, f"{name}: no help for {bare}"
    if "--temperature" in text:
        line = re.search(r"^  --temperature TEMPERATURE(.*?)(?=\n  -)", text, re.S | re.M).group(1)
        assert f"(default: {TEMPERATURE})" in " ".join(line.split())


def test_a_prompt_beyond_the_context_is_one_line(capsys, tmp_path):
    status, out, err = run_here(inference.main, ["--prompt", "Generate a music " * 400, "--output_dir", tmp_path],
                                capsys)
    assert status == 2 and "Traceback" not in err
    assert re.search(r"error: the prompt is too long: \d+ tokens \(6800 characters\)", err), err


def test_an_output_dir_that_cannot_take_music_is_said_before_loading(capsys, tmp_path, monkeypatch):
    afile = tmp_path / "taken"
    afile.write_text("x")
    status, _, err = run_here(inference.main, ["--prompt", "Generate a music", "--output_dir", afile], capsys)
    assert status == 2 and "is a file, not a folder" in err and "demo MuMu-LLaMA" not in err  # nothing loaded
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    status, _, err = run_here(inference.main, ["--prompt", "Generate a music", "--output_dir", locked], capsys)
    assert status == 2 and "is not writable by this user" in err


def test_ctrl_c_while_writing_keeps_the_answers_and_leaves_no_partial_file(capsys, tmp_path, monkeypatch):
    def interrupted(path, *args, **kwargs):
        open(path, "wb").write(b"RIFF")  # the start of a WAV, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(soundfile, "write", interrupted)
    prompts = ["Compose a slow flute piece in a minor key, played quiet.", "Compose a fast piano piece in a major key, "
               "played loud."]
    status, out, err = run_here(inference.main, ["--prompt", *prompts, "--music_seconds", "2", "--output_dir",
                                                 tmp_path], capsys)
    assert status == 130 and "Traceback" not in err
    assert ": interrupted: 0 music files written" in err
    assert [line for line in out.splitlines() if line.startswith("Q: ")] == [f"Q: {p}" for p in prompts]
    assert list(tmp_path.iterdir()) == []  # neither a partial WAV under its final name nor a temporary one


def test_encoder_flags_with_the_demo_name_what_they_need(capsys, tmp_path):
    status, _, err = run_here(inference.main, ["--vit_path", tmp_path, "--prompt", "Generate a music"], capsys)
    assert status == 2 and "--vit_path" in err and "demo/mumu/ViT" in err and "--image_file" in err
    assert "does not exist" not in err  # the demo is not dropped for ./ckpts/checkpoint.pth
    status, _, err = run_here(inference.main, ["--video_file", tmp_path / "v.mp4", "--prompt", "Music for it"], capsys)
    assert status == 2 and "not video" in err and "--vivit_path ckpts/vivit" in err and "checkpoint.pth" in err


def test_a_weight_file_this_user_cannot_read_is_a_permission_problem(smollm2_dir, monkeypatch):
    weights = smollm2_dir / "model.safetensors"
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(weights) else real_access(p, mode))
    with pytest.raises(CheckpointError, match=r"cannot be read by this user: permission denied.*chmod a\+r"):
        read_llama(smollm2_dir)


def test_written_weights_are_readable_by_others(tmp_path):
    from llama.checkpoints.hf import save_hf
    from llama.testing.tiny import random_model, tiny_args

    old = os.umask(0o022)
    try:
        model = random_model(tiny_args())
        save_hf(model.state_dict(), model.args, tmp_path)
    finally:
        os.umask(old)
    assert (tmp_path / "model.safetensors").stat().st_mode & 0o777 == 0o644
