"""Rebuild the demo MuMu-LLaMA in demo/mumu from scratch: synthetic music and requests -> note-event
decoder -> features and targets -> train.py -> export -> quality table.

    .venv/bin/python scripts/build_demo_mumu.py            # the shipped demo/mumu
    .venv/bin/python scripts/build_demo_mumu.py --clips 30 --requests 40 --test_requests 6 --decoder_steps 20 \\
        --pictures 8 --vit_steps 3 --set max_steps=2 --out outputs/demo-mumu-smoke \\
        --export outputs/demo-mumu-smoke/export                                             # smoke run (CI)

1. `--clips` synthetic clips of 3 s (data/synthetic.py, seed 1: not the clips demo/MERT was trained on),
   each asked every kind of question; `--requests` text -> music requests, `--edits_per_clip` edits and
   `--questions_per_clip` freely phrased questions per clip (data/synthetic_requests.py), a `--templated`
   share of the requests and edits from fixed templates, the rest phrased as people write them
   (data/phrasings.py); the first 20 % of clips and `--test_requests` requests held out.
2. The note-event decoder (decoders/notes.py) learns to read the set's captions. `--pictures` synthetic
   pictures (a coloured square or disc, data/synthetic_mumu.py; a quarter held out), each with a request for
   the music its colour stands for and a question about it (data/synthetic_requests.py); a small ViT
   (transformers' ViTModel, the real checkpoint format) learns to tell their colour and shape apart
   (`--vit_steps`; no pretrained ViT can be had offline; it learns the colour, not the shape: 100 % and 58 %
   for a probe on held-out pictures in a trial, so questions are answered with the colour alone).
3. Every clip's features by the shipped demo encoder (demo/MERT, frozen), every picture's by the ViT and
   every caption's target (10 x the decoder's conditioning) are cached.
4. train.py trains configs/demo-mumu.yaml on SmolLM2-135M-Instruct, then the projector alone, started
   afresh with its input standardised by statistics of the phase-1 model's [AUD] states on the training
   answers (`--statistics_batches`), with configs/demo-mumu-projector.yaml (--set applies to both).
5. The trained tensors, the decoder, the ViT and a held-out picture of each colour (examples/) go to
   `--export`; the held-out quality table (llama.data.generation_checks), the table on the hand-written
   phrasings of `--heldout` (requests, edits and questions no training phrasing produces) and the table on
   its pictures to EXPORT/quality.json, and printed.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

import llama
from llama.cli import UsageError, run_main
from llama.data import synthetic
from llama.data.caches import FeatureCache, build_cache, build_target_cache, build_vision_cache
from llama.data.generation_checks import (
    check_generation,
    check_phrasings,
    check_pictures,
    markdown_table,
    phrasings_table,
    pictures_table,
)
from llama.data.synthetic_mumu import COLOURS, SHAPES, make_mumu_dataset
from llama.data.synthetic_requests import make_picture_requests, make_request_dataset
from llama.decoders.notes import train_note_decoder
from llama.encoders.vit import load_vit
from llama.flags import HelpFormatter, add_debug_argument, positive_int
from llama.testing.vision import write_tiny_vit
from llama.training import TrainConfig, parse_overrides, train
from llama.training.projector import write_standardized_start

ROOT = Path(__file__).resolve().parents[1]
# The demo ViT: 64 x 64 pictures in 16 x 16 patches, 16 + 1 tokens of 64.
DEMO_VIT = {"image_size": 64, "patch_size": 16, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4}


def train_vit(pictures: Path, folder: Path, steps: int, seed: int) -> None:
    """The demo ViT, taught the training pictures' colour and shape (the held-out quarter unseen)."""
    facts = json.loads((pictures / "images.json").read_text())
    names = sorted(facts)[round(len(facts) * 0.25):]
    images = torch.stack([torch.as_tensor(llama.load_image(pictures / "images" / n)) for n in names])
    labels = {"colour": [sorted(COLOURS).index(facts[n]["colour"]) for n in names],
              "shape": [SHAPES.index(facts[n]["shape"]) for n in names]}
    write_tiny_vit(folder, seed=seed, images=images, labels=labels, steps=steps, **DEMO_VIT)


def write_example_pictures(pictures: Path, folder: Path) -> None:
    """The first held-out picture of each colour, as examples/{colour}.png (the README's commands use them)."""
    facts = json.loads((pictures / "images.json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(facts)[:round(len(facts) * 0.25)]:
        example = folder / f"{facts[name]['colour']}.png"
        if not example.exists():
            shutil.copyfile(pictures / "images" / name, example)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--out", default="outputs/demo-mumu", help="working folder (data, decoder, caches, training)")
    parser.add_argument("--export", default="demo/mumu", help="where the shipped files go")
    parser.add_argument("--config", default="configs/demo-mumu.yaml",
                        help="train.py config of phase 1 (its paths and data are set by this script)")
    parser.add_argument("--projector_config", default="configs/demo-mumu-projector.yaml",
                        help="train.py config of phase 2, the projector alone")
    parser.add_argument("--llama_dir", default="ckpts/SmolLM2-135M-Instruct", help="base LLM folder (and tokenizer)")
    parser.add_argument("--mert_path", default="demo/MERT", help="the (frozen) music encoder")
    parser.add_argument("--clips", type=positive_int, default=1000,
                        help="synthetic 3 s clips (at least 5; the first fifth held out)")
    parser.add_argument("--requests", type=positive_int, default=3000, help="text -> music training requests")
    parser.add_argument("--test_requests", type=positive_int, default=100,
                        help="held-out text -> music requests, beside --requests")
    parser.add_argument("--templated", type=float, default=0.3,
                        help="share of requests and edits from the fixed templates (the rest phrased freely)")
    parser.add_argument("--questions_per_clip", type=int, default=2, help="freely phrased questions per clip")
    parser.add_argument("--edits_per_clip", type=int, default=3, help="edits asked of each clip")
    parser.add_argument("--heldout", default="demo/mumu/heldout_requests.json",
                        help="hand-written requests, edits and questions the quality table also measures")
    parser.add_argument("--pictures", type=positive_int, default=600,
                        help="synthetic pictures (at least 4; the first quarter held out)")
    parser.add_argument("--vit_steps", type=positive_int, default=300, help="ViT training steps (32 pictures each)")
    parser.add_argument("--decoder_steps", type=positive_int, default=300, help="note-event decoder training steps")
    parser.add_argument("--statistics_batches", type=positive_int, default=50,
                        help="batches whose [AUD] states set the projector's input statistics")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the synthetic clips and requests and of the decoder")
    parser.add_argument("--no_quality", action="store_true",
                        help="export the model without measuring its quality tables (EXPORT/quality.json)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="train.py config overrides")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.clips < 5 or args.pictures < 4:
        raise UsageError("--clips must be at least 5 and --pictures at least 4 (a fifth and a quarter are held out)")
    out, export = Path(args.out), Path(args.export)

    data = out / "synthetic"
    synthetic.make_dataset(data, clips=args.clips, seconds=3.0, seed=args.seed, per_clip=3)
    make_request_dataset(data, requests=args.requests, test_requests=args.test_requests, seed=args.seed,
                         templated=args.templated, questions_per_clip=args.questions_per_clip,
                         edits_per_clip=args.edits_per_clip)
    pictures = out / "pictures"
    make_mumu_dataset(pictures, data, images=args.pictures, seed=args.seed)
    make_picture_requests(pictures, seed=args.seed, templated=args.templated)
    if not (out / "ViT" / "model.safetensors").exists():
        train_vit(pictures, out / "ViT", args.vit_steps, args.seed)
    build_vision_cache(load_vit(out / "ViT"), "image", sorted((pictures / "images").glob("*.png")), out / "vit-cache",
                       batch_size=64)
    decoder = train_note_decoder(out / "notes", steps=args.decoder_steps, seed=args.seed)
    mert = llama.load_mert(args.mert_path)
    build_cache(mert, sorted((data / "audios").glob("*.wav")), out / "cache", batch_size=32)
    captions = [r["conversation"][1]["caption"] for split in ("generate", "edit") for part in ("train", "test")
                for r in json.loads((data / f"{split}_{part}.json").read_text())]
    build_target_cache(decoder, captions, out / "targets", batch_size=256)

    overrides = {"llama_path": args.llama_dir, "mert_path": args.mert_path, "feature_cache": str(out / "cache"),
                 "vit_path": str(out / "ViT"), "vit_cache": str(out / "vit-cache"),
                 "target_cache": str(out / "targets"), "output_dir": str(out / "train"),
                 "data": [{"path": str(data / "generate_train.json")},
                          {"path": str(data / "edit_train.json"), "audio_root": str(data)},
                          {"path": str(pictures / "pictures_train.json")},
                          {"path": str(data / "train.json"), "audio_root": str(data / "audios")},
                          {"path": str(data / "questions_train.json"), "audio_root": str(data / "audios")}],
                 **parse_overrides(args.set)}
    config = TrainConfig.load(args.config, overrides)
    train(config, resume=(out / "train" / "train_state.pt").exists())

    # Phase 2: the projector alone (configs/demo-mumu-projector.yaml), started afresh with its input
    # standardised by statistics measured on the training answers through the phase-1 model.
    fresh = out / "fresh-projector.safetensors"
    overrides.update(output_dir=str(out / "projector"), pretrained_path=str(fresh), data=overrides["data"][:3])
    projector = TrainConfig.load(args.projector_config, overrides)
    if not (out / "projector" / "train_state.pt").exists():
        write_standardized_start(out / "train" / "checkpoint.safetensors", projector, args.statistics_batches)
    train(projector, resume=(out / "projector" / "train_state.pt").exists())

    export.mkdir(parents=True, exist_ok=True)
    for name in ("checkpoint.safetensors", "checkpoint.json"):
        shutil.copyfile(out / "projector" / name, export / name)
    shutil.copytree(out / "notes", export / "notes", dirs_exist_ok=True)
    shutil.copytree(out / "ViT", export / "ViT", dirs_exist_ok=True)
    write_example_pictures(pictures, export / "examples")
    if args.no_quality:
        return

    pipe = llama.load_mumu(export / "checkpoint.safetensors", args.llama_dir, mert_path=args.mert_path,
                           vit_path=export / "ViT", music_decoder_path=export / "notes")
    cache = FeatureCache(out / "cache")
    quality = check_generation(pipe, data, cache)
    heldout = json.loads(Path(args.heldout).read_text())
    quality["phrasings"] = check_phrasings(pipe, heldout, data, cache)
    quality["pictures"] = check_pictures(pipe, heldout["pictures"], pictures, data, cache)
    (export / "quality.json").write_text(json.dumps(quality, indent=1))
    print(markdown_table(quality))
    print(phrasings_table(quality["phrasings"]))
    print(pictures_table(quality["pictures"]))
    print(f"demo MuMu-LLaMA written to {export}", file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
