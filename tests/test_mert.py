import json

import numpy as np
import pytest
import torch
from transformers import HubertConfig, HubertModel

from llama import CheckpointError, load_mert
from llama.testing.tiny import TINY_MERT_CONFIG as MERT_CONFIG
from llama.testing.tiny import write_tiny_mert

RATE = 24000


@pytest.fixture(scope="module")
def mert_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mert")
    write_tiny_mert(folder)
    return folder


def noise(seconds, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * RATE)).astype(np.float32)


def test_mert_folder_equals_a_hubert_built_directly(mert_folder):
    mert = load_mert(mert_folder)
    written = torch.load(mert_folder / "pytorch_model.bin", weights_only=True)
    assert "encoder.pos_conv_embed.conv.weight_g" in written  # MERT's own key names
    reference = HubertModel(HubertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, conv_dim=[16] * 7,
        conv_stride=[5, 2, 2, 2, 2, 2, 2], conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_bias=False,
        feat_extract_norm="group", feat_proj_layer_norm=True, do_stable_layer_norm=True, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4, hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        feat_proj_dropout=0.0, layerdrop=0.0, conv_pos_batch_norm=False)).eval()
    reference.load_state_dict(written)
    x = torch.from_numpy(noise(1.0))[None]
    with torch.no_grad():
        ours = mert.hidden_states(x)
        theirs = reference(x, output_hidden_states=True)
    assert len(ours) == 3
    for mine, expected in zip(ours[:-1], theirs.hidden_states[:-1], strict=True):
        assert torch.equal(mine, expected)
    assert torch.equal(ours[-1], theirs.last_hidden_state)  # after the final LayerNorm
    means = mert.layer_means([x[0].numpy()])
    assert means.shape == (1, 3, 32)
    assert torch.allclose(means[0, 1], theirs.hidden_states[1][0].mean(0), atol=1e-6)


def test_clip_lengths_from_50ms_to_150s(mert_folder):
    mert = load_mert(mert_folder)
    assert mert.min_samples == 400
    tiny = noise(0.005)[:120]  # shorter than one encoder frame: zero-padded to 400 samples
    padded = np.concatenate([tiny, np.zeros(280, np.float32)])
    assert torch.equal(mert.layer_means([tiny]), mert.layer_means([padded]))
    for seconds in (0.05, 3.0, 150.0):
        means = mert.layer_means([noise(seconds)])
        assert means.shape == (1, 3, 32) and torch.isfinite(means).all()


def test_windowed_mean_is_length_weighted_mean_of_windows(mert_folder):
    mert = load_mert(mert_folder)
    clip = noise(150.0, seed=1)
    whole = mert.layer_means([clip])  # 60 s windows: 60 + 60 + 30
    windows = [clip[:60 * RATE], clip[60 * RATE:120 * RATE], clip[120 * RATE:]]
    separate = mert.layer_means(windows, window_s=1000)
    expected = (60 * separate[0] + 60 * separate[1] + 30 * separate[2]) / 150
    assert torch.allclose(whole[0], expected, atol=1e-5)
    # upstream mode: only the first 60 s, whatever the clip's length
    assert torch.allclose(mert.layer_means([clip], mode="upstream")[0], separate[0], atol=1e-6)
    assert not torch.allclose(whole, separate[0][None], atol=1e-3)


def test_batch_of_different_lengths_equals_one_by_one(mert_folder):
    mert = load_mert(mert_folder)
    clips = [noise(s, seed=i) for i, s in enumerate((3.0, 0.5, 70.0, 3.0))]
    batch = mert.layer_means(clips)
    alone = torch.cat([mert.layer_means([c]) for c in clips])
    assert torch.allclose(batch, alone, atol=1e-5)


def test_preprocessor_normalisation_is_read(tmp_path):
    write_tiny_mert(tmp_path / "raw", do_normalize=False)
    write_tiny_mert(tmp_path / "norm", do_normalize=True)
    raw, normed = load_mert(tmp_path / "raw"), load_mert(tmp_path / "norm")
    clip = noise(1.0) * 3 + 0.2
    standardised = (clip - clip.mean()) / np.sqrt(clip.var() + 1e-7)
    assert torch.allclose(normed.layer_means([clip]), raw.layer_means([standardised]), atol=1e-5)


def test_unsupported_mert_configs_are_refused(tmp_path):
    write_tiny_mert(tmp_path)
    for change, message in (({"feature_extractor_cqt": True}, "CQT"), ({"deepnorm": True}, "DeepNorm"),
                            ({"model_type": "bert"}, "model_type 'bert'")):
        (tmp_path / "config.json").write_text(json.dumps({**MERT_CONFIG, **change}))
        with pytest.raises(CheckpointError, match=message):
            load_mert(tmp_path)
    with pytest.raises(CheckpointError, match="no such file or folder"):
        load_mert(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_mert(tmp_path / "empty")
