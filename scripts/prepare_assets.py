"""Prepare the offline assets the tests and metrics use (WordNet for METEOR, SmolLM2 as an HF folder;
see llama/assets.py); run by scripts/install.sh. Idempotent."""

import argparse

from llama.assets import prepare_smollm2, prepare_wordnet
from llama.flags import HelpFormatter

if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter).parse_args()
    print("WordNet:", prepare_wordnet())
    print("SmolLM2:", prepare_smollm2())
