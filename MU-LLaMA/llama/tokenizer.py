"""One small interface over a SentencePiece `tokenizer.model` and an HF `tokenizer.json`."""

import json
from pathlib import Path


class Tokenizer:
    """`Tokenizer(path)`: path is a `tokenizer.model`, a `tokenizer.json`, or a folder holding one.

    encode(text, bos=True, eos=False) -> ids; decode(ids) -> text; bos_id, eos_id, pad_id, n_words.
    pad_id is -1 when the model defines none (LLaMA-2's SentencePiece model, as upstream).
    """

    def __init__(self, path):
        path = Path(path)
        if path.is_dir():
            found = [path / n for n in ("tokenizer.model", "tokenizer.json") if (path / n).exists()]
            if not found:
                raise FileNotFoundError(f"no tokenizer.model or tokenizer.json in {path}")
            path = found[0]
        if not path.exists():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        self.path = path
        if path.suffix == ".json":
            self._init_hf(path)
        else:
            self._init_sentencepiece(path)

    def _init_sentencepiece(self, path: Path):
        import sentencepiece

        self._sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
        self.n_words = self._sp.vocab_size()
        self.bos_id, self.eos_id, self.pad_id = self._sp.bos_id(), self._sp.eos_id(), self._sp.pad_id()
        self._encode = lambda text: self._sp.encode(text)
        self._decode = lambda ids: self._sp.decode(ids)

    def _init_hf(self, path: Path):
        from tokenizers import Tokenizer as HFTokenizer

        self._hf = HFTokenizer.from_file(str(path))
        self.n_words = self._hf.get_vocab_size(with_added_tokens=True)
        special = {}
        config = path.with_name("tokenizer_config.json")
        if config.exists():
            special = json.loads(config.read_text())

        def token_id(key):
            token = special.get(key)
            if isinstance(token, dict):
                token = token.get("content")
            found = self._hf.token_to_id(token) if token else None
            return -1 if found is None else found

        self.bos_id, self.eos_id, self.pad_id = token_id("bos_token"), token_id("eos_token"), token_id("pad_token")
        self._encode = lambda text: self._hf.encode(text, add_special_tokens=False).ids
        self._decode = lambda ids: self._hf.decode(ids, skip_special_tokens=False)

    def encode(self, text: str, bos: bool = True, eos: bool = False) -> list[int]:
        ids = list(self._encode(text))
        if bos and self.bos_id >= 0:
            ids = [self.bos_id, *ids]
        if eos and self.eos_id >= 0:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids) -> str:
        return self._decode([int(i) for i in ids])
