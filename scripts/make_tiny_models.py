"""Write the tiny random models and synthetic data the tiny configs use, in the real formats:

    OUT/LLaMA/7B/{params.json, consolidated.00.pth}, OUT/LLaMA/tokenizer.model   (--llama_dir layout)
    OUT/MERT/{config.json, pytorch_model.bin, preprocessor_config.json}           (MERT folder)
    OUT/synthetic/{audios/, train.json, test.json, facts.json}                    (MusicQA schema)

    .venv/bin/python scripts/make_tiny_models.py [--out outputs/tiny] [--clips 400]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MU-LLaMA"))

from llama.tiny import write_tiny_llama, write_tiny_mert  # noqa: E402

from data.synthetic import make_dataset  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/tiny")
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    write_tiny_llama(out / "LLaMA", seed=args.seed)
    write_tiny_mert(out / "MERT", seed=args.seed)
    make_dataset(out / "synthetic", clips=args.clips, seconds=args.seconds, seed=args.seed)
    print(f"tiny LLaMA, MERT and {args.clips} synthetic clips in {out}")
