"""A MuChoMusic-format benchmark from the synthetic music set, with known answers (llama.data.synthetic_muchomusic):
the offline proof that muchomusic.py measures listening, on the demo model.

    python ModelEvaluations/make_synthetic_muchomusic.py --out data/synthetic_muchomusic --clips 150 --vanished 4
    python ModelEvaluations/muchomusic.py --data_root data/synthetic_muchomusic --output_dir results/synthetic_mcq
"""

import argparse
import json

from llama.cli import run_main
from llama.data.synthetic_muchomusic import make_benchmark
from llama.flags import HelpFormatter, positive_int


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--out", default="data/synthetic_muchomusic", help="the benchmark's data folder to write")
    parser.add_argument("--clips", type=positive_int, default=150, help="tracks: half MusicCaps, half Song Describer")
    parser.add_argument("--per_clip", type=int, choices=[1, 2, 3], default=2, help="questions per track")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each track (the demo hears 3 s clips)")
    parser.add_argument("--vanished", type=int, default=0,
                        help="MusicCaps clips listed but without a file (as YouTube clips that no longer exist)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    counts = make_benchmark(args.out, args.clips, args.per_clip, args.seconds, args.vanished, args.seed)
    print(json.dumps(counts))


if __name__ == "__main__":
    run_main(main)
