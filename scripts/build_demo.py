"""Rebuild the demo MU-LLaMA in demo/ from scratch: synthetic music -> encoder -> features -> train.py -> export.

    .venv/bin/python scripts/build_demo.py                 # the shipped demo (about an hour on 2 CPU cores)
    .venv/bin/python scripts/build_demo.py --clips 40 --test_clips 8 --audio_steps 2 --set max_steps=2 \\
        --out outputs/demo-smoke --export outputs/demo-smoke/export    # smoke run (CI)

1. `--clips` synthetic clips of 3 s (MU-LLaMA/data/synthetic.py), every question kind asked of every
   clip; the first `--test_clips` are held out.
2. A small MERT-shaped encoder (HuBERT architecture, MERT checkpoint format) learns to tell the
   training clips' facts apart from its time-averaged hidden states (on random 1.5 s excerpts), and
   its output is standardised (llama/testing/learn.py). There is no pretrained MERT offline, so this stands
   in for MERT's self-supervised pretraining.
3. Every clip's encoder features are cached (data/cache_features.py): the encoder is frozen from here.
4. train.py trains the bridge, prefix and gates on SmolLM2-135M-Instruct with configs/demo-pretrain.yaml.
5. The trained tensors and the encoder are copied to `--export`, with two example clips (examples/);
   the held-out table (own vs shuffled audio) and the answer on gradio's real sax.wav go to
   EXPORT/quality.json.
"""

import argparse
import importlib.util
import json
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile

import llama
from llama.audio import SAMPLE_RATE
from llama.cli import UsageError, run_main
from llama.data import synthetic
from llama.data.caches import build_cache
from llama.flags import HelpFormatter, add_debug_argument, positive_int
from llama.testing.tiny import write_tiny_mert
from llama.training import TrainConfig, parse_overrides, train

ROOT = Path(__file__).resolve().parents[1]

# MERT-v1's config fields (llama/testing/tiny.py) at demo size: 7 conv layers of 32 channels, 2 layers of 64.
DEMO_ENCODER = dict(hidden_size=64, intermediate_size=128, conv_dim=[32] * 7)
FACTS = ("instrument", "tempo", "mode", "loudness", "count")
SAX_QUESTION = "What instrument is playing?"
# Clips that ship in EXPORT/examples for the README's commands: (family, tempo, mode), one instrument, 6 s.
EXAMPLES = [("flute", "slow", "minor"), ("piano", "fast", "major")]


def sax_wav() -> Path:
    return Path(importlib.util.find_spec("gradio").origin).parent / "media_assets" / "audio" / "sax.wav"


def write_examples(folder: Path, seconds: float = 6.0):
    folder.mkdir(parents=True, exist_ok=True)
    for family, tempo, mode in EXAMPLES:
        rng = random.Random(f"{family}-{tempo}-{mode}")
        facts = synthetic.random_facts(rng) | {"instrument": family, "program": synthetic.FAMILIES[family][0],
                                               "tempo": tempo, "bpm": sum(synthetic.TEMPI[tempo]) // 2, "mode": mode,
                                               "count": 1}
        audio = synthetic.render(synthetic.compose(facts, seconds, rng), seconds)
        soundfile.write(folder / f"{family}-{tempo}-{mode}.wav", audio, SAMPLE_RATE, subtype="PCM_16")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--out", default="outputs/demo", help="working folder (data, encoder, cache, training)")
    parser.add_argument("--export", default="demo", help="where the shipped files go")
    parser.add_argument("--config", default="configs/demo-pretrain.yaml",
                        help="train.py config (its paths and data are set by this script)")
    parser.add_argument("--llama_dir", default="ckpts/SmolLM2-135M-Instruct", help="base LLM folder (and tokenizer)")
    parser.add_argument("--clips", type=positive_int, default=3100, help="synthetic 3 s clips, test clips included")
    parser.add_argument("--test_clips", type=positive_int, default=100,
                        help="clips held out of training, for the quality table (fewer than --clips)")
    parser.add_argument("--audio_steps", type=int, default=1500, help="encoder training steps")
    parser.add_argument("--audio_batch", type=int, default=32, help="clips per encoder training step")
    parser.add_argument("--audio_crop", type=float, default=1.5, help="seconds of each clip heard per encoder step")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and of the encoder")
    parser.add_argument("--no_quality", action="store_true",
                        help="export the model without measuring its held-out quality table (EXPORT/quality.json)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="train.py config overrides")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.test_clips >= args.clips:
        raise UsageError(f"--test_clips {args.test_clips} leaves no training clips of --clips {args.clips}")
    out, export = Path(args.out), Path(args.export)

    data = out / "synthetic"
    facts = synthetic.make_dataset(data, clips=args.clips, seconds=3.0, test_fraction=args.test_clips / args.clips,
                                   seed=args.seed, per_clip=len(FACTS) + 1)
    names = sorted(facts)[args.test_clips:]
    labels = synthetic.class_indices(facts, names, FACTS)
    if not (out / "MERT" / "pytorch_model.bin").exists():
        clips = np.stack([llama.load_audio(data / "audios" / n) for n in names])
        write_tiny_mert(out / "MERT", seed=args.seed, clips=clips, labels=labels, steps=args.audio_steps,
                        batch_size=args.audio_batch, crop=round(args.audio_crop * SAMPLE_RATE),
                        standardize=True, **DEMO_ENCODER)
        print(f"encoder trained: {out / 'MERT'}", file=sys.stderr)
    build_cache(llama.load_mert(out / "MERT"), sorted((data / "audios").glob("*.wav")), out / "cache", batch_size=32)

    overrides = {"llama_path": args.llama_dir, "mert_path": str(out / "MERT"), "feature_cache": str(out / "cache"),
                 "data": [{"path": str(data / "train.json"), "audio_root": str(data / "audios")}],
                 "output_dir": str(out / "pretrain"), **parse_overrides(args.set)}
    config = TrainConfig.load(args.config, overrides)
    train(config, resume=(out / "pretrain" / "train_state.pt").exists())

    (export / "MERT").mkdir(parents=True, exist_ok=True)
    for name in ("checkpoint.safetensors", "checkpoint.json"):
        shutil.copyfile(out / "pretrain" / name, export / name)
    for name in ("config.json", "pytorch_model.bin", "preprocessor_config.json"):
        shutil.copyfile(out / "MERT" / name, export / "MERT" / name)
    write_examples(export / "examples")
    if args.no_quality:
        return

    model = llama.load(export / "checkpoint.safetensors", args.llama_dir, export / "MERT")
    comparison = synthetic.compare(model, data)
    sax = model.answer([llama.load_audio(sax_wav())], [SAX_QUESTION], max_new_tokens=32)[0]
    comparison["sax_wav"] = {"question": SAX_QUESTION, "answer": sax}
    (export / "quality.json").write_text(json.dumps(comparison, indent=1))
    print(synthetic.markdown_table(comparison))
    print(f"sax.wav, {SAX_QUESTION!r} -> {sax!r}")


if __name__ == "__main__":
    run_main(main)
