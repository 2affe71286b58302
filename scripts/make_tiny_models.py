"""Write the tiny models and synthetic data the tiny configs use, in the real formats:

    OUT/synthetic/{audios/, train.json, test.json, facts.json}                    (MusicQA schema)
    OUT/LLaMA/7B/{params.json, consolidated.00.pth}, OUT/LLaMA/tokenizer.model   (--llama_dir layout)
    OUT/MERT/{config.json, pytorch_model.bin, preprocessor_config.json}           (MERT folder)
    OUT/cache/                                   (every clip's MERT features, data/cache_features.py)

The tiny LLaMA gets its own small SentencePiece model and first learns the text of the training
questions and answers (without audio), so that MU-LLaMA training only has to teach it to listen.
The tiny MERT, for want of a pretrained one offline, first learns to tell the training clips' facts
apart from its time-averaged hidden states (on random 1.5 s excerpts): like MERT, it then hears what
the music is. `--audio_crop 0 --audio_steps 500` trains it on whole clips for longer: it then also
hears tempo well (docs/training.md), for about 30 s more on 2 cores.

    .venv/bin/python scripts/make_tiny_models.py [--out outputs/tiny] [--clips 800] [--audio_steps 300]
"""

import argparse
import json
from pathlib import Path

import numpy as np

from llama import format_prompt, load_audio, load_mert
from llama.audio import SAMPLE_RATE
from llama.data.caches import build_cache
from llama.data.dataset import load_records
from llama.data.synthetic import class_indices, make_dataset
from llama.flags import HelpFormatter
from llama.testing.tiny import train_tokenizer, write_tiny_llama, write_tiny_mert

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--out", default="outputs/tiny", help="output folder (synthetic/, LLaMA/, MERT/, cache/)")
    parser.add_argument("--clips", type=int, default=800, help="synthetic clips (the first fifth held out)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each clip, in seconds")
    parser.add_argument("--text_steps", type=int, default=250, help="causal-LM steps on the training text")
    parser.add_argument("--audio_steps", type=int, default=300, help="steps teaching the tiny MERT the facts")
    parser.add_argument("--audio_crop", type=float, default=1.5,
                        help="seconds of each clip the tiny MERT hears per step (a random excerpt; 0: the whole clip)")
    parser.add_argument("--template", default="alpaca", help="prompt template of the training runs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and of the tiny models")
    args = parser.parse_args()
    out = Path(args.out)
    make_dataset(out / "synthetic", clips=args.clips, seconds=args.seconds, seed=args.seed)
    examples = [(r.question, r.answer) for r in load_records(out / "synthetic" / "train.json")[0]]
    texts = [format_prompt(q, args.template) for q, _ in examples] + [a for _, a in examples]
    spm = train_tokenizer(texts, out / "tokenizer.model")
    write_tiny_llama(out / "LLaMA", seed=args.seed, tokenizer_model=spm, examples=examples, template=args.template,
                     steps=args.text_steps)
    facts = json.loads((out / "synthetic" / "facts.json").read_text())
    names = sorted(facts)[round(len(facts) * 0.2):]  # the training clips (the first 20 % are held out)
    clips = np.stack([load_audio(out / "synthetic" / "audios" / n) for n in names])
    labels = class_indices(facts, names, ("instrument", "tempo", "mode", "loudness"))
    crop = round(args.audio_crop * SAMPLE_RATE) if 0 < args.audio_crop < args.seconds else None
    write_tiny_mert(out / "MERT", seed=args.seed, clips=clips, labels=labels, steps=args.audio_steps, crop=crop,
                    standardize=True)
    # The tiny configs train from cached features: MERT is frozen, so each clip is encoded once.
    build_cache(load_mert(out / "MERT"), sorted((out / "synthetic" / "audios").glob("*.wav")), out / "cache",
                batch_size=32)
    print(f"tiny LLaMA, MERT and {args.clips} synthetic clips in {out}")
