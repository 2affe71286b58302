"""The released files as users have them (tests/layouts.py): every layout loads to the same model, and
every common mistake ends in one message that names the fix."""

import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import soundfile
import torch

import llama
from llama import CheckpointError, load, load_audio, load_llama, load_mert, read_mu_llama
from llama.checkpoints.names import is_trained_key
from llama.loading import build_llama
from llama.testing.layouts import (
    LLAMA1_PARAMS,
    LLAMA2_PARAMS,
    lfs_pointer,
    random_base,
    rope_freqs,
    write_download_sh,
    write_hf,
    write_hf_cache,
    write_meta,
)
from llama.testing.releases import (
    tiny_params,
    write_llama_adapter_checkpoint,
    write_m2ugen_fragment,
    write_tiny_release,
)
from llama.testing.upstream import write_upstream_checkpoint

from conftest import ROOT, run_here

TOKENS = torch.randint(0, 32000, (2, 9), generator=torch.Generator().manual_seed(0))
HUB_LLAMA, HUB_MERT = "meta-llama/Llama-2-7b-hf", "m-a-p/MERT-v1-330M"


def logits(model):
    with torch.no_grad():
        return model(TOKENS)


def reference(args, state):
    """The model built straight from the state dict, no file in between."""
    return logits(build_llama(args, dict(state), "memory"))


@pytest.fixture(scope="module")
def base():
    return random_base(LLAMA2_PARAMS)


@pytest.fixture(scope="module")
def files(tmp_path_factory, base, sentencepiece_model):
    """One folder per real layout of the same LLaMA-2 weights."""
    root = tmp_path_factory.mktemp("layouts")
    args, state = base
    write_meta(root / "ckpts" / "LLaMA" / "7B", args, state)
    (root / "ckpts" / "LLaMA" / "tokenizer.model").write_bytes(sentencepiece_model.read_bytes())
    chat = random_base(LLAMA2_PARAMS, seed=1)
    write_download_sh(root / "download", sentencepiece_model, {"llama-2-7b": (*base, LLAMA2_PARAMS, 1),
                                                               "llama-2-7b-chat": (*chat, LLAMA2_PARAMS, 1)})
    write_download_sh(root / "download-one", sentencepiece_model, {"llama-2-7b": (*base, LLAMA2_PARAMS, 1)})
    write_hf(root / "hf-both", args, state, sentencepiece_model)
    write_hf(root / "hf-bin", args, state, sentencepiece_model, formats=("bin",))
    write_hf(root / "hf-safetensors", args, state, sentencepiece_model, formats=("safetensors",))
    # both formats, but the download of the second safetensors shard never finished
    write_hf(root / "hf-partial", args, state, sentencepiece_model)
    (root / "hf-partial" / "model-00002-of-00002.safetensors").unlink()
    write_hf_cache(root / "hub", HUB_LLAMA, root / "hf-safetensors")
    return root


LAYOUTS = {  # name: (path under `files`, llama_type)
    "meta, upstream ckpts/LLaMA + 7B": ("ckpts/LLaMA", "7B"),
    "meta, the 7B folder itself": ("ckpts/LLaMA/7B", "7B"),
    "meta, a weight file": ("ckpts/LLaMA/7B/consolidated.00.pth", "7B"),
    "download.sh, --llama_type names the model": ("download", "llama-2-7b"),
    "download.sh, one model": ("download-one", "7B"),
    "HF, safetensors and bin": ("hf-both", "7B"),
    "HF, bin only (inv_freq)": ("hf-bin", "7B"),
    "HF, safetensors only": ("hf-safetensors", "7B"),
    "HF, safetensors shard missing, bins whole": ("hf-partial", "7B"),
    "HF cache repo folder": ("hub/models--meta-llama--Llama-2-7b-hf", "7B"),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_loads_to_the_same_logits(files, base, layout):
    path, llama_type = LAYOUTS[layout]
    assert torch.equal(logits(load_llama(files / path, llama_type=llama_type)), reference(*base))


def test_hf_folder_tokenizer_is_the_sentencepiece_model(files, sentencepiece_model):
    """An HF folder holds tokenizer.model and tokenizer.json: the SentencePiece model is the one read."""
    import sentencepiece

    text = "Describe the music: a calm piano piece."
    expected = sentencepiece.SentencePieceProcessor(model_file=str(sentencepiece_model)).encode(text)
    tokenizer = llama.Tokenizer(llama.paths.find_tokenizer(files / "hf-both"))
    assert tokenizer.path.name == "tokenizer.model" and tokenizer.encode(text, bos=False) == expected
    assert llama.Tokenizer(files / "hf-both" / "tokenizer.json").encode(text, bos=False) == expected


def test_hub_id_resolves_through_the_offline_cache(files, base, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(files / "hub"))
    assert torch.equal(logits(load_llama(HUB_LLAMA)), reference(*base))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(files / "empty-cache"))
    with pytest.raises(CheckpointError, match=r"not in the HF cache.*offline.*huggingface-cli download meta-llama"):
        load_llama(HUB_LLAMA)


def test_meta_shards_hold_rope_freqs_in_bf16(files):
    shard = torch.load(files / "ckpts/LLaMA/7B/consolidated.00.pth", weights_only=True)
    assert shard["rope.freqs"].shape == (8,) and {t.dtype for t in shard.values()} == {torch.bfloat16}
    assert (files / "ckpts/LLaMA/7B/checklist.chk").read_text().count("\n") == 2


def test_13b_two_shards_and_llama1_fp16(tmp_path, sentencepiece_model):
    args, state = random_base(LLAMA2_PARAMS, seed=2)
    write_meta(tmp_path / "llama-2-13b", args, state, shards=2)
    shard = torch.load(tmp_path / "llama-2-13b" / "consolidated.01.pth", weights_only=True)
    assert shard["layers.0.attention.wq.weight"].shape == (32, 64)  # split on dim 0
    assert shard["layers.0.attention.wo.weight"].shape == (64, 32)  # split on dim 1
    assert torch.equal(logits(load_llama(tmp_path / "llama-2-13b")), reference(args, state))

    args, state = random_base(LLAMA1_PARAMS, seed=3)
    folder = write_meta(tmp_path / "LLaMA-1" / "7B", args, state, LLAMA1_PARAMS, dtype=torch.float16)
    shard = torch.load(folder / "consolidated.00.pth", weights_only=True)  # LLaMA-1's per-layer copies
    shard.update({f"layers.{i}.attention.inner_attention.rope.freqs": rope_freqs(args).half() for i in range(2)})
    torch.save(shard, folder / "consolidated.00.pth")
    model = load_llama(tmp_path / "LLaMA-1", llama_type="7B")
    assert model.args.norm_eps == 1e-6 and torch.equal(logits(model), reference(args, state))


def test_rope_freqs_of_another_base_are_refused(tmp_path, base):
    args, state = base
    folder = write_meta(tmp_path / "7B", args, state)
    shard = torch.load(folder / "consolidated.00.pth", weights_only=True)
    shard["rope.freqs"] = (1.0 / 500000.0 ** (torch.arange(0, 16, 2).float() / 16)).bfloat16()
    torch.save(shard, folder / "consolidated.00.pth")
    with pytest.raises(CheckpointError, match=r"rope\.freqs holds rotary frequencies of base ~5e\+05.*theta 10000"):
        load_llama(folder)


# --- the user's mistakes -----------------------------------------------------------------------


def copy(files, name, tmp_path):
    return shutil.copytree(files / name, tmp_path / name, symlinks=True)


def test_download_sh_folder_with_several_models_names_llama_type(files):
    message = r"several models \(llama-2-7b, llama-2-7b-chat\).*--llama_type llama-2-7b\)"
    with pytest.raises(CheckpointError, match=message):
        load_llama(files / "download", llama_type="7B")


def test_lfs_pointer_empty_and_partial_downloads_name_the_cause(files, tmp_path):
    folder = copy(files, "ckpts", tmp_path) / "LLaMA"
    shard = folder / "7B" / "consolidated.00.pth"
    saved = shard.read_bytes()
    lfs_pointer(shard)
    with pytest.raises(CheckpointError, match=r"Git LFS pointer .*git lfs install && git lfs pull"):
        load_llama(folder)
    shard.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty \(0 bytes\).*download it again"):
        load_llama(folder)
    shard.write_bytes(saved[: len(saved) // 2])
    with pytest.raises(CheckpointError, match="md5 differs from checklist.chk.*incomplete"):
        load_llama(folder)
    shard.unlink()
    with pytest.raises(CheckpointError, match="lacks consolidated.00.pth, which its checklist.chk lists.*download.sh"):
        load_llama(folder)

    hf = copy(files, "hf-safetensors", tmp_path)
    (hf / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"no complete set of weight files \(a partial download\?\)"):
        load_llama(hf)
    tokenizer = copy(files, "hf-bin", tmp_path) / "tokenizer.model"
    lfs_pointer(tokenizer)
    with pytest.raises(CheckpointError, match="Git LFS pointer"):
        llama.paths.find_tokenizer(tokenizer.parent)


def test_mert_from_bin_folder_hf_cache_and_hub_id(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from llama.testing.tiny import write_tiny_mert

    write_tiny_mert(tmp_path / "MERT-v1-330M")
    assert not (tmp_path / "MERT-v1-330M" / "model.safetensors").exists()
    repo = write_hf_cache(tmp_path / "hub", HUB_MERT, tmp_path / "MERT-v1-330M")
    clip = np.random.default_rng(0).uniform(-0.5, 0.5, 24000).astype(np.float32)
    expected = load_mert(tmp_path / "MERT-v1-330M").layer_means([clip])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for path in (repo, HUB_MERT, tmp_path / "MERT-v1-330M" / "pytorch_model.bin"):
        assert torch.equal(load_mert(path).layer_means([clip]), expected), path
    weights = next((repo / "snapshots").rglob("pytorch_model.bin"))
    weights.resolve().unlink()  # the cache lost the blob the snapshot links to
    with pytest.raises(CheckpointError, match="does not exist.*broken link.*download it again"):
        load_mert(repo)


def test_wrong_checkpoint_kinds_name_what_to_pass(tmp_path, files):
    write_m2ugen_fragment(tmp_path / "m2ugen.pth")
    write_llama_adapter_checkpoint(tmp_path / "7B.pth")
    # llama.load takes an M2UGen file as MuMu-LLaMA (tests/test_mumu.py); MU-LLaMA's own reader refuses it
    with pytest.raises(CheckpointError, match=r"M2UGen / MuMu-LLaMA checkpoint.*mu-llama/MU-LLaMA"):
        read_mu_llama(tmp_path / "m2ugen.pth")
    cases = {tmp_path / "7B.pth": r"ImageBind-LLM \(LLaMA-Adapter\).*checkpoint.pth from the HF repository",
             files / "ckpts/LLaMA/7B/consolidated.00.pth": r"base LLaMA weights \(a Meta shard\).*--llama_dir",
             files / "hf-bin/pytorch_model-00001-of-00002.bin": r"base LLaMA weights in HF format.*--llama_dir"}
    for path, message in cases.items():
        with pytest.raises(CheckpointError, match=message):
            load(path, files / "ckpts/LLaMA", tmp_path)


# --- MU-LLaMA: the released checkpoint.pth -----------------------------------------------------


@pytest.fixture(scope="module")
def release(tmp_path_factory, sentencepiece_model):
    """ckpts/ as ckpts/README.md lays it out: LLaMA/{7B, tokenizer.model}, MERT-v1-330M/, checkpoint.pth."""
    root = tmp_path_factory.mktemp("release") / "ckpts"
    release = write_tiny_release(root, sentencepiece_model)
    (root / "MERT").rename(root / "MERT-v1-330M")
    release["mert_path"] = root / "MERT-v1-330M"
    return release


def clip_file(path, seconds=1.5, rate=44100):
    soundfile.write(path, np.random.default_rng(1).uniform(-0.5, 0.5, int(seconds * rate)).astype(np.float32), rate)
    return path


def test_released_checkpoint_was_saved_on_a_gpu(release):
    with zipfile.ZipFile(release["checkpoint"]) as z:
        pickle = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    assert b"cuda:0" in pickle and b"cpu" not in pickle
    assert any(k.startswith("mert_model.") and k.endswith("weight_g") for k in llama.files.torch_load(
        release["checkpoint"])["model"])


@pytest.fixture(scope="module")
def release_layouts(release, tmp_path_factory):
    """The release's base LLaMA in every other layout, beside the README's ckpts/LLaMA."""
    root = tmp_path_factory.mktemp("release-layouts")
    tokenizer = release["llama_dir"] / "tokenizer.model"
    args, state = llama.read_llama(release["llama_dir"] / "7B")
    params = tiny_params(release["model"])
    chat = random_base(params, seed=7)
    write_download_sh(root / "download", tokenizer, {"llama-2-7b": (args, state, params, 1),
                                                     "llama-2-7b-chat": (*chat, params, 1)})
    write_download_sh(root / "download-13b", tokenizer, {"llama-2-13b": (args, state, params, 2)})
    for formats in (("safetensors", "bin"), ("bin",), ("safetensors",)):
        write_hf(root / "-".join(formats), args, state, tokenizer, formats=formats)
    write_hf_cache(root / "hub", HUB_LLAMA, root / "safetensors")
    return root


RELEASE_LAYOUTS = {"download.sh, --llama_type llama-2-7b": ("download", "llama-2-7b"),
                   "download.sh, 13B-style two shards": ("download-13b", "7B"),
                   "HF, both formats": ("safetensors-bin", "7B"), "HF, bin only": ("bin", "7B"),
                   "HF, safetensors only": ("safetensors", "7B"),
                   "HF cache folder": ("hub/models--meta-llama--Llama-2-7b-hf", "7B")}


def music_logits(pipeline, tokens, encoded):
    network = pipeline.model
    return network.logits(tokens, {"music": network.features("music", encoded)})


@pytest.mark.parametrize("layout", RELEASE_LAYOUTS)
def test_mu_llama_loads_over_every_layout(release, release_layouts, layout, capsys):
    path, llama_type = RELEASE_LAYOUTS[layout]
    tokens, means = TOKENS[:, :7], torch.randn(2, 3, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = music_logits(load(release["checkpoint"], release["llama_dir"], release["mert_path"]), tokens, means)
        model = load(release["checkpoint"], release_layouts / path, release["mert_path"], llama_type=llama_type)
        assert torch.equal(music_logits(model, tokens, means), expected)
    assert "base LLaMA" not in capsys.readouterr().err  # every layout holds the checkpoint's own base


def answers_of(result):
    return [line for line in result.stdout.splitlines() if line.startswith("A:")]


def test_readme_layout_and_hub_ids_give_the_same_answers(release, tmp_path, capsys, monkeypatch):
    """inference.py as the README runs it, then with hub ids answered from an offline HF cache holding
    the same weights in HF format (meta-llama/Llama-2-7b-hf) and the MERT folder (m-a-p/MERT-v1-330M)."""
    song = clip_file(tmp_path / "song.wav")
    command = [sys.executable, str(ROOT / "MU-LLaMA" / "inference.py"), "--model", "ckpts/checkpoint.pth",
               "--audio_path", str(song), "--question", "Describe the audio", "--max_gen_len", "6",
               "--temperature", "0", "--dtype", "float32"]  # answers compared exactly: float32, not auto
    cwd = release["checkpoint"].parents[1]
    readme = subprocess.run([*command, "--llama_dir", "ckpts/LLaMA", "--mert_path", "ckpts/MERT-v1-330M"],
                            cwd=cwd, capture_output=True, text=True, check=True)
    args, state = llama.read_llama(release["llama_dir"] / "7B")
    hf = write_hf(tmp_path / "hf", args, state, release["llama_dir"] / "tokenizer.model")
    write_hf_cache(tmp_path / "hub", HUB_LLAMA, hf)
    write_hf_cache(tmp_path / "hub", HUB_MERT, release["mert_path"])
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    hub = subprocess.run([*command, "--llama_dir", HUB_LLAMA, "--mert_path", HUB_MERT], cwd=cwd, env=env,
                         capture_output=True, text=True, check=True)
    download = tmp_path / "download"
    write_download_sh(download, release["llama_dir"] / "tokenizer.model",
                      {"llama-2-7b": (args, state, tiny_params(release["model"]), 1)})
    sys.path.insert(0, str(ROOT / "MU-LLaMA"))
    import inference

    monkeypatch.chdir(cwd)  # the same command line for the download.sh layout, in this process
    status, out, err = run_here(inference.main, [*command[2:], "--llama_dir", download, "--mert_path",
                                                 "ckpts/MERT-v1-330M"], capsys)
    assert status == 0, err
    meta = [line for line in out.splitlines() if line.startswith("A:")]
    assert len(answers_of(readme)) == 1 and answers_of(hub) == answers_of(readme) == meta
    assert "base LLaMA" not in readme.stderr + hub.stderr  # the checkpoint's base equals the folder's


def test_embedded_base_that_differs_is_used_as_the_original_did(release, tmp_path, capsys):
    """checkpoint.pth carries base weights other than llama_dir's (say an older LLaMA-1 download):
    the original answered with the checkpoint's; so does this project, by default, and says so."""
    other_args, other = random_base({**tiny_params(release["model"])}, seed=5)
    root = tmp_path / "ckpts"
    shutil.copytree(release["llama_dir"], root / "LLaMA")
    write_meta(root / "LLaMA" / "7B", other_args, other, tiny_params(release["model"]))
    ckpt_base = {k: v for k, v in llama.read_llama(release["llama_dir"] / "7B")[1].items()}
    frozen = {f"llama.{k}": v for k, v in ckpt_base.items() if not is_trained_key(f"llama.{k}")}
    state = {**release["model"].state_dict(), **frozen}
    write_upstream_checkpoint(state, release["mert"].state_dict(), root / "checkpoint.pth")
    means = torch.randn(2, 3, 32, generator=torch.Generator().manual_seed(0))
    tokens = TOKENS[:, :7]
    with torch.no_grad():
        original = music_logits(load(root / "checkpoint.pth", root / "LLaMA", release["mert_path"]), tokens, means)
        line = capsys.readouterr().err
        kept = load(root / "checkpoint.pth", root / "LLaMA", release["mert_path"], base_weights="llama_dir")
        kept = music_logits(kept, tokens, means)
        line_kept = capsys.readouterr().err
        # the original's answers: what the same checkpoint gives over a llama_dir holding its own base
        same_base = music_logits(load(release["checkpoint"], release["llama_dir"], release["mert_path"]), tokens, means)
    assert torch.allclose(original, same_base, atol=1e-5)
    assert (kept - original).abs().max() > 0.1
    assert "using " + str(root / "checkpoint.pth") in line and "--base_weights llama_dir" in line
    assert line.count("\n") == 1 and "using " + str(root / "LLaMA" / "7B") in line_kept


def test_mert_v0_sample_rate_comes_from_its_preprocessor_config(release, tmp_path, capsys):
    from llama.testing.tiny import write_tiny_mert

    sys.path.insert(0, str(ROOT / "MU-LLaMA"))
    import inference

    write_tiny_mert(tmp_path / "MERT-v0", sample_rate=16000)
    model = load(release["checkpoint"], release["llama_dir"], tmp_path / "MERT-v0")
    assert model.sample_rate == 16000
    song = clip_file(tmp_path / "song.wav")
    status, out, err = run_here(inference.main, [  # inference.py's command line, in this process
        "--model", release["checkpoint"], "--llama_dir", release["llama_dir"], "--mert_path", tmp_path / "MERT-v0",
        "--audio_path", song, "--max_gen_len", "6", "--temperature", "0",
        "--dtype", "float32"], capsys)  # compared with float32 load() exactly
    assert status == 0, err
    expected = model.answer([load_audio(song, 16000)], ["Describe the Audio"], max_new_tokens=6)
    assert [line for line in out.splitlines() if line.startswith("A:")] == [f"A: {expected[0]}"]

