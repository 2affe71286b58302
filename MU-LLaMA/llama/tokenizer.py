"""One small interface over a SentencePiece `tokenizer.model` and an HF `tokenizer.json`."""

import json
import re
from pathlib import Path


class Tokenizer:
    """`Tokenizer(path)`: path is a `tokenizer.model`, a `tokenizer.json`, or a folder holding one.

    encode(text, bos=True, eos=False) -> ids; decode(ids) -> text; bos_id, eos_id, pad_id, n_words.
    pad_id is -1 when the model defines none (LLaMA-2's SentencePiece model, as upstream).
    add_tokens(["[AUD0]", ...]) appends whole-word tokens after the vocabulary (MuMu-LLaMA's).
    """

    added: dict[str, int] = {}  # token -> id of the added tokens; add_tokens gives an instance its own

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

    def add_tokens(self, tokens: list[str]) -> list[int]:
        """Ids of `tokens`, appended after the vocabulary where new. As transformers' tokenizers treat
        added tokens: the text is split at them and the pieces between are encoded on their own; on
        decoding, the pieces and the added tokens are joined by single spaces ("[AUD0] [AUD1]")."""
        self.added = dict(self.added)
        for token in tokens:
            if token not in self.added:
                self.added[token] = self.n_words
                self.n_words += 1
        self._split = re.compile("(" + "|".join(map(re.escape, self.added)) + ")")
        self._added_ids = {i: t for t, i in self.added.items()}
        return [self.added[t] for t in tokens]

    def _encode_with_added(self, text: str) -> list[int]:
        if not self.added:
            return list(self._encode(text))
        ids = []
        for part in self._split.split(text):
            if part in self.added:
                ids.append(self.added[part])
            elif part:
                ids += self._encode(part)
        return ids

    def _decode_with_added(self, ids: list[int]) -> str:
        if not self.added:
            return self._decode(ids)
        parts, run = [], []
        for i in ids:
            if i in self._added_ids:
                if run:
                    parts.append(self._decode(run))
                parts.append(self._added_ids[i])
                run = []
            else:
                run.append(i)
        if run:
            parts.append(self._decode(run))
        return " ".join(parts)

    def encode(self, text: str, bos: bool = True, eos: bool = False) -> list[int]:
        ids = self._encode_with_added(text)
        if bos and self.bos_id >= 0:
            ids = [self.bos_id, *ids]
        if eos and self.eos_id >= 0:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids) -> str:
        return self._decode_with_added([int(i) for i in ids])
