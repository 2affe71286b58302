"""Rebuild the demo MuMu-LLaMA in demo/mumu from scratch: synthetic music and requests -> note-event
decoder -> features and targets -> train.py -> export -> quality table.

    .venv/bin/python scripts/build_demo_mumu.py            # the shipped demo/mumu
    .venv/bin/python scripts/build_demo_mumu.py --clips 30 --requests 40 --test_requests 6 --decoder_steps 20 \\
        --set max_steps=2 --out outputs/demo-mumu-smoke --export outputs/demo-mumu-smoke/export   # smoke run (CI)

1. `--clips` synthetic clips of 3 s (data/synthetic.py, seed 1: not the clips demo/MERT was trained on),
   each asked every kind of question; `--requests` text -> music requests, `--edits_per_clip` edits and
   `--questions_per_clip` freely phrased questions per clip (data/synthetic_requests.py), a `--templated`
   share of the requests and edits from fixed templates, the rest phrased as people write them
   (data/phrasings.py); the first 20 % of clips and `--test_requests` requests held out.
2. The note-event decoder (decoders/notes.py) learns to read the set's captions.
3. Every clip's features by the shipped demo encoder (demo/MERT, frozen) and every caption's target
   (10 x the decoder's conditioning) are cached.
4. train.py trains configs/demo-mumu.yaml on SmolLM2-135M-Instruct, then the projector alone, started
   afresh with its input standardised by statistics of the phase-1 model's [AUD] states on the training
   answers (`--statistics_batches`), with configs/demo-mumu-projector.yaml (--set applies to both).
5. The trained tensors and the decoder go to `--export`; the held-out quality table (llama.data.generation_checks)
   and the table on the hand-written phrasings of `--heldout` (requests, edits and questions no training
   phrasing produces) to EXPORT/quality.json, and printed.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import llama
from llama.cli import UsageError, run_main
from llama.data import synthetic
from llama.data.caches import FeatureCache, build_cache, build_target_cache
from llama.data.generation_checks import check_generation, check_phrasings, markdown_table, phrasings_table
from llama.data.synthetic_requests import make_request_dataset
from llama.decoders.notes import train_note_decoder
from llama.flags import HelpFormatter, add_debug_argument, positive_int
from llama.training import TrainConfig, parse_overrides, train
from llama.training.projector import write_standardized_start

ROOT = Path(__file__).resolve().parents[1]


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
    parser.add_argument("--requests", type=positive_int, default=2000, help="text -> music training requests")
    parser.add_argument("--test_requests", type=positive_int, default=100,
                        help="held-out text -> music requests, beside --requests")
    parser.add_argument("--templated", type=float, default=0.3,
                        help="share of requests and edits from the fixed templates (the rest phrased freely)")
    parser.add_argument("--questions_per_clip", type=int, default=1, help="freely phrased questions per clip")
    parser.add_argument("--edits_per_clip", type=int, default=3, help="edits asked of each clip")
    parser.add_argument("--heldout", default="demo/mumu/heldout_requests.json",
                        help="hand-written requests, edits and questions the quality table also measures")
    parser.add_argument("--decoder_steps", type=positive_int, default=300, help="note-event decoder training steps")
    parser.add_argument("--statistics_batches", type=positive_int, default=50,
                        help="batches whose [AUD] states set the projector's input statistics")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the synthetic clips and requests and of the decoder")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="train.py config overrides")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.clips < 5:
        raise UsageError("--clips must be at least 5 (a fifth is held out)")
    out, export = Path(args.out), Path(args.export)

    data = out / "synthetic"
    synthetic.make_dataset(data, clips=args.clips, seconds=3.0, seed=args.seed, per_clip=3)
    make_request_dataset(data, requests=args.requests, test_requests=args.test_requests, seed=args.seed,
                         templated=args.templated, questions_per_clip=args.questions_per_clip,
                         edits_per_clip=args.edits_per_clip)
    decoder = train_note_decoder(out / "notes", steps=args.decoder_steps, seed=args.seed)
    mert = llama.load_mert(args.mert_path)
    build_cache(mert, sorted((data / "audios").glob("*.wav")), out / "cache", batch_size=32)
    captions = [r["conversation"][1]["caption"] for split in ("generate", "edit") for part in ("train", "test")
                for r in json.loads((data / f"{split}_{part}.json").read_text())]
    build_target_cache(decoder, captions, out / "targets", batch_size=256)

    overrides = {"llama_path": args.llama_dir, "mert_path": args.mert_path, "feature_cache": str(out / "cache"),
                 "target_cache": str(out / "targets"), "output_dir": str(out / "train"),
                 "data": [{"path": str(data / "generate_train.json")},
                          {"path": str(data / "edit_train.json"), "audio_root": str(data)},
                          {"path": str(data / "train.json"), "audio_root": str(data / "audios")},
                          {"path": str(data / "questions_train.json"), "audio_root": str(data / "audios")}],
                 **parse_overrides(args.set)}
    config = TrainConfig.load(args.config, overrides)
    train(config, resume=(out / "train" / "train_state.pt").exists())

    # Phase 2: the projector alone (configs/demo-mumu-projector.yaml), started afresh with its input
    # standardised by statistics measured on the training answers through the phase-1 model.
    fresh = out / "fresh-projector.safetensors"
    overrides.update(output_dir=str(out / "projector"), pretrained_path=str(fresh), data=overrides["data"][:2])
    projector = TrainConfig.load(args.projector_config, overrides)
    if not (out / "projector" / "train_state.pt").exists():
        write_standardized_start(out / "train" / "checkpoint.safetensors", projector, args.statistics_batches)
    train(projector, resume=(out / "projector" / "train_state.pt").exists())

    export.mkdir(parents=True, exist_ok=True)
    for name in ("checkpoint.safetensors", "checkpoint.json"):
        shutil.copyfile(out / "projector" / name, export / name)
    shutil.copytree(out / "notes", export / "notes", dirs_exist_ok=True)

    pipe = llama.load_mumu(export / "checkpoint.safetensors", args.llama_dir, mert_path=args.mert_path,
                           music_decoder_path=export / "notes")
    cache = FeatureCache(out / "cache")
    quality = check_generation(pipe, data, cache)
    quality["phrasings"] = check_phrasings(pipe, json.loads(Path(args.heldout).read_text()), data, cache)
    (export / "quality.json").write_text(json.dumps(quality, indent=1))
    print(markdown_table(quality))
    print(phrasings_table(quality["phrasings"]))
    print(f"demo MuMu-LLaMA written to {export}", file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
