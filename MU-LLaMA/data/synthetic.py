"""Make the synthetic MusicQA-style dataset (llama.data.synthetic): rendered clips whose instrument, tempo,
mode, loudness and note count are known, and question-answer records about them.

    python MU-LLaMA/data/synthetic.py --out data/synthetic [--clips 400] [--seconds 3]
"""

import argparse

from llama.data.synthetic import make_dataset
from llama.flags import HelpFormatter


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--out", required=True, help="output folder: audios/, train.json, test.json, facts.json")
    parser.add_argument("--clips", type=int, default=400, help="number of clips to render")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each clip, in seconds")
    parser.add_argument("--test_fraction", type=float, default=0.2,
                        help="share of the clips (0-1) whose records go to test.json; the rest to train.json")
    parser.add_argument("--per_clip", type=int, default=4, help="question-answer records per clip")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clips' facts, notes and questions")
    args = parser.parse_args()
    facts = make_dataset(args.out, args.clips, args.seconds, args.test_fraction, args.seed, args.per_clip)
    print(f"{len(facts)} clips in {args.out}")


if __name__ == "__main__":
    main()
