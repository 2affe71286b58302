"""Clips per hour of batch captioning with MU-LLaMA/batch_inference.py, one clip per call against batches.

Default: the demo model (or the model that inference.py's flags name), fp32 on this CPU, captioning
--clips synthetic clips of --seconds s rendered by MU-LLaMA/data/synthetic.py (or the first --clips
audio files of --folder) with one question, greedy, answers of at most --max_gen_len tokens. Times the
whole pipeline of batch_inference.py (read files, MERT, bridge, generation, JSONL) after a one-clip
warm-up, and checks that every batch size gives batch 1's answers.

    .venv/bin/python benchmarks/batch_captioning.py [--clips 32] [--seconds 10] [--batch_sizes 1 16] [--folder DIR]
    .venv/bin/python benchmarks/batch_captioning.py --shape 7b --device cuda        # on a GPU only

--shape 7b: random weights at the released shape, built on the GPU (LLaMA-2-7B with the finetune
LoRA and biases and the full-size bridge in bf16, a MERT-v1-330M-shaped encoder in fp32), 128
clips of 30 s, 64-token answers (random weights practically never stop early), batch 1, 16 and 64.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MU-LLaMA"))  # the script it measures

from batch_inference import SETTINGS, answer_pairs, find_pairs, read_records  # noqa: E402
from load_memory import MERT_330M  # noqa: E402

from llama import MERT, ModelArgs, MULLaMA, MULLaMAConfig, Pipeline, Tokenizer  # noqa: E402
from llama.cli import add_model_arguments, load_model  # noqa: E402
from llama.data.synthetic import make_dataset  # noqa: E402
from llama.encoders.mert import hubert_config  # noqa: E402
from llama.testing.tiny import random_transformer, sentencepiece_model_file  # noqa: E402

LLAMA_2_7B = ModelArgs(max_seq_len=4096, w_bias=True, w_lora=True)


def random_mu_llama(llama_args: ModelArgs, mert_config: dict, device, dtype=torch.bfloat16) -> Pipeline:
    """A MU-LLaMA of any shape with random weights, allocated on `device` directly (no CPU copy)."""
    backbone = random_transformer(llama_args, device, dtype)
    config = MULLaMAConfig(query_layer=min(20, llama_args.n_layers), mert_layers=mert_config["num_hidden_layers"] + 1,
                           mert_dim=mert_config["hidden_size"])
    with torch.device(device):
        # .to(device) as well: HubertModel makes masked_spec_embed with the legacy torch.Tensor(), which
        # ignores the device context and would leave one parameter on the CPU
        mert = MERT(hubert_config(mert_config)).to(device)
        model = MULLaMA(backbone, None, config).to(dtype)
    model.mert = mert  # MERT stays fp32, as llama.load keeps it
    return Pipeline(model.requires_grad_(False).eval(), Tokenizer(sentencepiece_model_file()))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=["7b"], help="random weights at this shape instead of a model (GPU only)")
    parser.add_argument("--clips", type=int, help="clips to caption (default 32; 128 with --shape 7b)")
    parser.add_argument("--seconds", type=float, help="length of the synthetic clips (default 10; 30 with --shape 7b)")
    parser.add_argument("--folder", help="caption these audio files instead of synthetic clips")
    parser.add_argument("--batch_sizes", type=int, nargs="+", help="default 1 16; 1 16 64 with --shape 7b")
    parser.add_argument("--question", default="Describe the audio")
    add_model_arguments(parser, max_gen_len=64, temperature=0.0, top_p=1.0)
    args = parser.parse_args()
    big = args.shape == "7b"
    if big and not (args.device.startswith("cuda") and torch.cuda.is_available()):
        parser.error("--shape 7b allocates a 7B-shaped MU-LLaMA (~17 GB) and needs a CUDA GPU: run it with "
                     "--device cuda on a machine that has one")
    clips, seconds = args.clips or (128 if big else 32), args.seconds or (30.0 if big else 10.0)
    batch_sizes = args.batch_sizes or ([1, 16, 64] if big else [1, 16])

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.folder is None:
            make_dataset(tmp / "synthetic", clips=clips, seconds=seconds, test_fraction=0.0)
        folder = Path(args.folder) if args.folder else tmp / "synthetic" / "audios"
        pairs = find_pairs([str(folder)], [args.question], None)[:clips]
        if big:
            dtype = torch.bfloat16 if args.dtype == "auto" else getattr(torch, args.dtype)
            model = random_mu_llama(LLAMA_2_7B, MERT_330M, args.device, dtype)
            what = (f"random LLaMA-2-7B-shaped MU-LLaMA ({dtype}), MERT-330M-shaped encoder (fp32), "
                    f"{torch.cuda.get_device_name()}")
        else:
            model = load_model(args)
            what = f"{args.model} on {args.device}, {torch.get_num_threads()} threads"
        settings = {key: getattr(args, key) for key in SETTINGS}
        answer_pairs(model, pairs[:1], tmp / "warmup.jsonl", 1, settings, desc="warm-up")
        rows, reference = [], None
        for batch_size in batch_sizes:
            output = tmp / f"batch{batch_size}.jsonl"
            start = time.perf_counter()
            counts = answer_pairs(model, pairs, output, batch_size, settings, desc=f"batch {batch_size}")
            elapsed = time.perf_counter() - start
            answers = {r["audio"]: r.get("answer") for r in read_records(output)}
            reference = reference or answers
            same = sum(answers[a] == reference[a] for a in reference)
            rows.append((batch_size, counts["answers"], elapsed, counts["answers"] / elapsed * 3600, same))
    print(f"\n{what}; {len(pairs)} clips ({'synthetic, ' + str(seconds) + ' s' if not args.folder else folder}), "
          f"question {args.question!r}, greedy, max_gen_len {args.max_gen_len}\n")
    print(f"| batch | clips | seconds | clips/hour | speed-up | answers as batch {batch_sizes[0]} |")
    print("|---|---|---|---|---|---|")
    for batch_size, n, elapsed, rate, same in rows:
        print(f"| {batch_size} | {n} | {elapsed:.1f} | {rate:.0f} | {rate / rows[0][3]:.2f}x | {same}/{len(pairs)} |")


if __name__ == "__main__":
    main()
