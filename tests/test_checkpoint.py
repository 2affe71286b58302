import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from llama import CheckpointError, load_llama, save_hf, save_meta
from llama.checkpoints.hf import meta_to_hf
from llama.testing.tiny import random_model, tiny_args


def logits(model, seed=0):
    tokens = torch.randint(0, model.args.vocab_size, (2, 11), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(tokens)


@pytest.fixture
def model():
    return random_model(tiny_args(n_kv_heads=2))


def test_meta_folder_loads_to_same_model(tmp_path, model):
    save_meta(model.state_dict(), model.args, tmp_path)
    loaded = load_llama(tmp_path)
    assert loaded.args == model.args
    assert torch.equal(logits(loaded), logits(model))
    assert not any(p.requires_grad for p in loaded.parameters())


def test_two_shard_meta_equals_one_shard(tmp_path, model):
    save_meta(model.state_dict(), model.args, tmp_path / "one")
    save_meta(model.state_dict(), model.args, tmp_path / "two", num_shards=2)
    assert sorted(p.name for p in (tmp_path / "two").glob("*.pth")) == ["consolidated.00.pth", "consolidated.01.pth"]
    shard = torch.load(tmp_path / "two" / "consolidated.00.pth", weights_only=True)
    assert shard["layers.0.attention.wq.weight"].shape[0] == model.args.dim // 2  # really split
    assert shard["layers.0.attention.wo.weight"].shape[1] == model.args.dim // 2
    one, two = load_llama(tmp_path / "one"), load_llama(tmp_path / "two")
    for (k1, v1), (k2, v2) in zip(one.state_dict().items(), two.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2), k1


def test_llama2_params_json_with_vocab_minus_one(tmp_path, model):
    save_meta(model.state_dict(), model.args, tmp_path)
    params = json.loads((tmp_path / "params.json").read_text())
    params["vocab_size"] = -1  # what Meta ships for LLaMA-2
    (tmp_path / "params.json").write_text(json.dumps(params))
    assert load_llama(tmp_path).args.vocab_size == model.args.vocab_size


def test_hf_meta_hf_round_trip_is_bit_exact(tmp_path):
    model = random_model(tiny_args(n_kv_heads=2, tie_embeddings=True))
    save_hf(model.state_dict(), model.args, tmp_path / "hf")
    from_hf = load_llama(tmp_path / "hf")
    assert torch.equal(logits(from_hf), logits(model))
    save_meta(from_hf.state_dict(), from_hf.args, tmp_path / "meta")
    from_meta = load_llama(tmp_path / "meta")
    save_hf(from_meta.state_dict(), from_meta.args, tmp_path / "hf2")
    first, second = load_file(tmp_path / "hf" / "model.safetensors"), load_file(tmp_path / "hf2" / "model.safetensors")
    assert first.keys() == second.keys() and "lm_head.weight" not in first
    assert all(torch.equal(first[k], second[k]) for k in first)
    configs = [json.loads((tmp_path / name / "config.json").read_text()) for name in ("hf", "hf2")]
    assert configs[0] == configs[1]


def test_hf_sharded_index_and_bin_formats(tmp_path, model):
    hf = meta_to_hf(model.state_dict(), model.args)
    save_hf(model.state_dict(), model.args, tmp_path / "single")
    config = (tmp_path / "single" / "config.json").read_text()
    keys = sorted(hf)
    halves = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    sharded, binary = tmp_path / "sharded", tmp_path / "bin"
    for folder in (sharded, binary):
        folder.mkdir()
        (folder / "config.json").write_text(config)
    for name, part in halves.items():
        save_file({k: hf[k].contiguous() for k in part}, sharded / name)
    index = {"weight_map": {k: name for name, part in halves.items() for k in part}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    torch.save(hf, binary / "pytorch_model.bin")
    expected = logits(model)
    for folder in (tmp_path / "single", sharded, binary):
        assert torch.equal(logits(load_llama(folder)), expected), folder.name


def test_loads_in_requested_dtype_with_added_parameters_initialised(tmp_path, model):
    save_meta(model.state_dict(), model.args, tmp_path)
    loaded = load_llama(tmp_path, dtype=torch.bfloat16, w_bias=True, w_lora=True, lora_rank=4)
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    assert not any(p.is_meta for p in loaded.parameters())
    state = loaded.state_dict()
    assert state["layers.1.attention.gate"].abs().sum() == 0
    assert state["layers.1.attention.lora_wq_l2.weight"].abs().sum() == 0
    assert state["layers.1.attention.lora_wq_l1.weight"].abs().sum() > 0
    assert state["layers.1.feed_forward.w2.bias"].abs().sum() == 0


def test_same_dtype_cpu_load_is_memory_mapped(tmp_path, model):
    save_meta(model.state_dict(), model.args, tmp_path)
    loaded = load_llama(tmp_path)  # file is fp32, model fp32 on CPU: no copy at all
    shard = str(tmp_path / "consolidated.00.pth")
    regions = []  # address ranges the process has mapped from the shard file
    for line in open("/proc/self/maps"):
        fields = line.split()
        if fields[-1] == shard:
            start, end = (int(x, 16) for x in fields[0].split("-"))
            regions.append((start, end))
    for p in (loaded.layers[0].attention.wq.weight, loaded.tok_embeddings.weight, loaded.norm.weight):
        assert any(start <= p.data_ptr() < end for start, end in regions)


# --- bad checkpoints ---------------------------------------------------------------------------


def test_missing_params_json(tmp_path, model):
    save_meta(model.state_dict(), model.args, tmp_path)
    (tmp_path / "params.json").unlink()
    with pytest.raises(CheckpointError, match="no params.json.*consolidated.00.pth"):
        load_llama(tmp_path)


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="holds no LLaMA weights"):
        load_llama(tmp_path)
    with pytest.raises(CheckpointError, match="no such file or folder"):
        load_llama(tmp_path / "nowhere")


def test_truncated_shard(tmp_path, model):
    save_meta(model.state_dict(), model.args, tmp_path)
    shard = tmp_path / "consolidated.00.pth"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_llama(tmp_path)


def test_truncated_safetensors(tmp_path, model):
    save_hf(model.state_dict(), model.args, tmp_path)
    file = tmp_path / "model.safetensors"
    file.write_bytes(file.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_llama(tmp_path)


def test_wrong_shapes_missing_and_unexpected_are_listed_together(tmp_path, model):
    state = dict(model.state_dict())
    state["layers.1.feed_forward.w1.weight"] = torch.zeros(5, model.args.dim)
    del state["layers.2.ffn_norm.weight"]
    state["layers.0.attention.extra.weight"] = torch.zeros(2)
    save_meta(state, model.args, tmp_path)
    with pytest.raises(CheckpointError) as info:
        load_llama(tmp_path)
    message = str(info.value)
    assert "1 missing" in message and "layers.2.ffn_norm.weight" in message
    assert "1 unexpected" in message and "layers.0.attention.extra.weight" in message
    assert "1 wrong shape" in message and "layers.1.feed_forward.w1.weight: checkpoint (5, 64)" in message


class Payload:
    """Unpickling this would create a file: the loader must never do it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_with_code_is_refused_and_never_run(tmp_path, model):
    marker = tmp_path / "pwned"
    state = dict(model.state_dict())
    state["payload"] = Payload(str(marker))
    save_meta(model.state_dict(), model.args, tmp_path)
    torch.save(state, tmp_path / "consolidated.00.pth")
    assert not marker.exists()
    with pytest.raises(CheckpointError, match=r"objects other than tensors \(it holds io.open\)") as info:
        load_llama(tmp_path)
    assert "weights_only=False" not in str(info.value)  # never the advice to run the file's code
    assert not marker.exists()


def test_pre_zip_pickle_of_old_torch_loads(tmp_path, model):
    """torch < 1.6 wrote plain pickles: they cannot be memory-mapped, but load (weights only)."""
    save_meta(model.state_dict(), model.args, tmp_path)
    shard = tmp_path / "consolidated.00.pth"
    torch.save(torch.load(shard, weights_only=True), shard, _use_new_zipfile_serialization=False)
    assert not shard.read_bytes().startswith(b"PK")
    assert torch.equal(logits(load_llama(tmp_path)), logits(model))


def test_malformed_params_json(tmp_path, model):
    save_meta(model.state_dict(), model.args, tmp_path)
    (tmp_path / "params.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_llama(tmp_path)


def test_convert_llama_script_meta_to_hf_and_back(tmp_path, model):
    import subprocess
    import sys

    from conftest import ROOT

    save_meta(model.state_dict(), model.args, tmp_path / "meta")
    script = str(ROOT / "scripts" / "convert_llama.py")
    subprocess.run([sys.executable, script, str(tmp_path / "meta"), str(tmp_path / "hf"), "--to", "hf",
                    "--dtype", "float32"], check=True, capture_output=True)
    sys.path.insert(0, str(ROOT / "scripts"))
    import convert_llama

    convert_llama.main([str(tmp_path / "hf"), str(tmp_path / "meta2"), "--to", "meta", "--dtype", "float32",
                        "--shards", "2"])  # back, in this process (the script's command line was shown above)
    assert (tmp_path / "hf" / "model.safetensors").exists()
    assert (tmp_path / "meta2" / "consolidated.01.pth").exists()
    assert torch.equal(logits(load_llama(tmp_path / "meta2")), logits(model))
