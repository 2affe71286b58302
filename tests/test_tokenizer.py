import json

import pytest

from llama import Tokenizer


def test_real_sentencepiece_model_round_trips(sentencepiece_model):
    tok = Tokenizer(sentencepiece_model)
    assert (tok.n_words, tok.bos_id, tok.eos_id, tok.pad_id) == (32000, 1, 2, -1)  # LLaMA-2's layout
    text = "A slow jazz ballad: saxophone, piano & brushed drums — 72 BPM, in B♭ minor."
    ids = tok.encode(text, bos=True, eos=True)
    assert ids[0] == 1 and ids[-1] == 2 and len(ids) > 10
    assert tok.decode(ids[1:-1]) == text
    assert tok.encode(text, bos=False) == ids[1:-1]
    assert Tokenizer(sentencepiece_model.parent).n_words == 32000  # a folder works too


def test_hf_tokenizer_json(smollm2_dir):
    tok = Tokenizer(smollm2_dir / "tokenizer.json")
    config = json.loads((smollm2_dir / "tokenizer_config.json").read_text())
    assert tok.n_words == 49152
    assert tok.eos_id == tok._hf.token_to_id(config["eos_token"])
    text = "What instrument is playing? A trumpet, I think."
    ids = tok.encode(text, bos=False)
    assert tok.decode(ids) == text
    assert tok.encode(text)[0] == tok.bos_id


def test_missing_tokenizer(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer.model or tokenizer.json"):
        Tokenizer(tmp_path)
