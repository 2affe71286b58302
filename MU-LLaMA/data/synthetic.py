"""Make the synthetic MusicQA-style dataset (llama.data.synthetic): rendered clips whose instrument, tempo,
mode, loudness and note count are known, and question-answer records about them.

    python MU-LLaMA/data/synthetic.py --out data/synthetic [--clips 400] [--seconds 3]
"""

import argparse

from llama.data.synthetic import make_dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--test_fraction", type=float, default=0.2)
    parser.add_argument("--per_clip", type=int, default=4, help="question-answer records per clip")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    facts = make_dataset(args.out, args.clips, args.seconds, args.test_fraction, args.seed, args.per_clip)
    print(f"{len(facts)} clips in {args.out}")


if __name__ == "__main__":
    main()
