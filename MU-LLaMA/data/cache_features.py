"""Precompute what frozen models contribute to training, once (llama.data.caches):

- MERT (`--mert_path`): each clip's per-layer time-means [L + 1, H], keyed by audio file name;
- ViT / ViViT (`--vit_path` / `--vivit_path`, MuMu-LLaMA): each image's or video's last hidden
  states [tokens, width], keyed by file name;
- a music decoder (`--music_decoder_path`, with `--music_decoder`; MuMu-LLaMA): the decoder-alignment
  target of each music answer's caption, keyed by the caption's SHA-1.

    python MU-LLaMA/data/cache_features.py --mert_path ckpts/MERT-v1-330M --data MusicQA/PretrainMusicQA.json \\
        --audio_root MusicQA/audios --out cache/mert [--batch_size 8] [--audio_mode full] [--device cuda]
    python MU-LLaMA/data/cache_features.py --vit_path ckpts/vit --data data/COCO.json data/MUImage.json --out cache/vit
    python MU-LLaMA/data/cache_features.py --music_decoder_path ckpts/musicgen-medium --data data/MUCaps.json \\
        --out cache/targets

`--data` takes MusicQA records (`audio_name`) and MuMu-LLaMA records (`input_file`) alike; input files
resolve against `--audio_root`, else the data file's folder. Re-running resumes: what the cache holds
is skipped. Everything is computed in eval mode.
"""

import argparse

import torch

from llama.checkpoints.mert import load_mert
from llama.cli import run_main
from llama.data.caches import build_cache, build_target_cache, build_vision_cache
from llama.data.dataset import report_source
from llama.data.sources import KINDS, read_source
from llama.decoders.base import DECODER_CONDITIONING
from llama.flags import HelpFormatter, add_debug_argument


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--mert_path", help="cache MERT features of the audio inputs")
    what.add_argument("--vit_path", help="cache ViT features of the image inputs")
    what.add_argument("--vivit_path", help="cache ViViT features of the video inputs")
    what.add_argument("--music_decoder_path", help="cache the decoder-alignment targets of the music captions")
    parser.add_argument("--music_decoder", choices=sorted(DECODER_CONDITIONING), default="musicgen",
                        help="the kind of decoder at --music_decoder_path")
    parser.add_argument("--data", nargs="+", required=True, help="MusicQA or MuMu-LLaMA JSON/JSONL record files")
    parser.add_argument("--kind", choices=KINDS, default="records",
                        help="the data files' format, as a training config's data entry names it (data/sources.py)")
    parser.add_argument("--audio_root", help="folder of the input files (default: beside each data file)")
    parser.add_argument("--out", required=True, help="cache folder (created; what it already holds is skipped)")
    parser.add_argument("--batch_size", type=int, default=8, help="files (or captions) encoded at once")
    parser.add_argument("--shard_size", type=int, default=512, help="items per shard file")
    parser.add_argument("--audio_mode", choices=["full", "upstream"], default="full",
                        help="MERT: full: encode the whole clip in --window_s windows; upstream: only its first window")
    parser.add_argument("--window_s", type=float, default=60.0, help="MERT window length, in seconds")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu, cuda or cuda:N (the default: cuda where PyTorch sees a GPU)")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    records = []
    for path in args.data:
        read, problems = read_source(path, args.audio_root, args.kind)
        report_source(path, args.kind, len(read) + sum(problems.values()), len(read), problems)
        records += read
    from llama.decoders import load_decoder  # each imports transformers or diffusers (seconds): only when used
    from llama.encoders.vit import load_vit
    from llama.encoders.vivit import load_vivit

    if args.music_decoder_path:
        decoder = load_decoder(args.music_decoder, args.music_decoder_path, device=args.device)
        captions = [r.caption for r in records if r.caption is not None]
        cache = build_target_cache(decoder, captions, args.out, args.batch_size, args.shard_size)
        print(f"{len(cache)} caption targets cached in {args.out}")
        return
    modality = "audio" if args.mert_path else "image" if args.vit_path else "video"
    files = [r.input_file for r in records if r.input_file is not None and r.input_modality == modality]
    if args.mert_path:
        mert = load_mert(args.mert_path, device=args.device)
        cache = build_cache(mert, files, args.out, args.batch_size, args.shard_size, args.audio_mode, args.window_s)
    else:
        encoder = (load_vit if args.vit_path else load_vivit)(args.vit_path or args.vivit_path, device=args.device)
        cache = build_vision_cache(encoder, modality, files, args.out, args.batch_size, args.shard_size)
    print(f"{len(cache)} {modality} inputs cached in {args.out}")


if __name__ == "__main__":
    run_main(main)
