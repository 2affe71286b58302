"""Prepare the offline assets the tests and metrics use (WordNet for METEOR, SmolLM2 as an HF folder;
see llama/assets.py); run by scripts/install.sh. Idempotent."""

from llama.assets import prepare_smollm2, prepare_wordnet

if __name__ == "__main__":
    print("WordNet:", prepare_wordnet())
    print("SmolLM2:", prepare_smollm2())
