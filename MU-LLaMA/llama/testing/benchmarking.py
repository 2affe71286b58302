"""The released models' shapes built with random weights, and the timing helpers every benchmark uses:
LLaMA-2-7B with MU-LLaMA's finetune LoRA and biases, MERT-v1-330M's config.json, MusicGen's configs, a
random MU-LLaMA pipeline allocated on the device directly, decode throughput against the device's
memory-bandwidth floor, and the machine's name for each figure."""

import statistics
import time

import torch
from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

from ..compiled import compile_decoding
from ..encoders.mert import MERT, hubert_config
from ..generation import generate
from ..model import ModelArgs, Transformer
from ..mu_llama import MULLaMA, MULLaMAConfig
from ..pipeline import Pipeline
from ..precision import cpu_name
from ..tokenizer import Tokenizer
from .tiny import TINY_MERT_CONFIG, random_transformer, sentencepiece_model_file

LLAMA_2_7B = ModelArgs(max_seq_len=4096, w_bias=True, w_lora=True)


# MERT-v1-330M's config.json: the tiny copy's fields at the released sizes
MERT_330M = {**TINY_MERT_CONFIG, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
             "intermediate_size": 4096, "conv_dim": [512] * 7, "num_conv_pos_embeddings": 128,
             "num_conv_pos_embedding_groups": 16}
# facebook/musicgen-{small,medium}: T5-base text encoder, the 32 kHz EnCodec, a decoder over 4 codebooks
DECODERS = {"small": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, ffn_dim=4096),
            "medium": dict(hidden_size=1536, num_hidden_layers=48, num_attention_heads=24, ffn_dim=6144)}


def musicgen_config(size: str, tiny: bool) -> MusicgenConfig:
    t5 = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
    codec = EncodecConfig(sampling_rate=32000, audio_channels=1, target_bandwidths=[2.2],
                          upsampling_ratios=[8, 5, 4, 4], codebook_size=2048, codebook_dim=128, hidden_size=128,
                          num_filters=64, num_lstm_layers=2, norm_type="weight_norm", normalize=False,
                          use_causal_conv=False, compress=2, kernel_size=7, last_kernel_size=7, residual_kernel_size=3,
                          dilation_growth_rate=2, num_residual_layers=1, pad_mode="reflect", trim_right_ratio=1.0,
                          use_conv_shortcut=False, chunk_length_s=None, overlap=None)
    shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=128) if tiny else DECODERS[size]
    decoder = MusicgenDecoderConfig(vocab_size=2048, num_codebooks=4, max_position_embeddings=2048, dropout=0.0,
                                    pad_token_id=2048, bos_token_id=2048, **shape)
    if tiny:
        t5 = T5Config(vocab_size=32128, d_model=768, d_kv=16, d_ff=64, num_layers=1, num_heads=4)
    return MusicgenConfig(text_encoder=t5, audio_encoder=codec, decoder=decoder)


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


def timed(fn, repeats, warmup=True):
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def describe_machine(dtype) -> str:
    return f"{cpu_name()}, {torch.get_num_threads()} threads, {str(dtype).removeprefix('torch.')}"


def read_bandwidth(device) -> float:
    """Bytes/s of reading a 1 GiB float32 tensor once (a sum over it) with this process's threads or on the
    device: the speed at which a decoding step can at best read its weights."""
    x = torch.ones(2**28, device=device)
    seconds, _ = timed(lambda: x.sum(), 5)
    return x.numel() * x.element_size() / seconds


def product_seconds(model: Transformer, batch: int, repeats: int = 5) -> float:
    """Median seconds of a decoding step's matrix products alone: every linear layer's weight (the head
    included) times a [batch, in] input, one after another as the step runs them, nothing else."""
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    inputs = {w.shape[1]: torch.randn(batch, w.shape[1], dtype=w.dtype, device=w.device) for w in weights}

    def products():
        for w in weights:
            torch.nn.functional.linear(inputs[w.shape[1]], w)

    with torch.inference_mode():
        return timed(products, repeats)[0]


def weight_bytes(model: Transformer) -> int:
    """Bytes a decoding step reads: every parameter once (a tied embedding once, as the head)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def decode_run(model, tokenizer, prompts, new_tokens: int) -> tuple[float, float, list]:
    """(wall seconds, median seconds per decoding step, completions) of one greedy `generate` of exactly
    `new_tokens` tokens per prompt; a step is the time between two tokens (sampling and bookkeeping included)."""
    stamps = []
    sync()
    start = time.perf_counter()
    out = generate(model, tokenizer, prompts, max_new_tokens=new_tokens, stop_ids=[],
                   on_token=lambda step, tokens: stamps.append(time.perf_counter()))
    sync()
    wall = time.perf_counter() - start
    return wall, statistics.median(b - a for a, b in zip(stamps, stamps[1:], strict=False)), out


def decode_rows(model, tokenizer, prompts_of, batches, new_tokens: int, repeats: int, floor_s: float,
                label: str) -> dict[int, dict]:
    """Table rows (printed) of one model as it is (eager, or compiled by `compile_decoding`): per batch the
    median of `repeats` runs after a warm-up (which compiles), tok/s, ms per step, the step's products alone,
    the floor and the fraction of it reached. Returns {batch: {"tok_s", "step_ms", "products_ms", "tokens"}}."""
    rows = {}
    for batch in batches:
        prompts = prompts_of(batch)
        decode_run(model, tokenizer, prompts, new_tokens)  # warm-up at the timed shapes: compiles a compiled step
        runs = [decode_run(model, tokenizer, prompts, new_tokens) for _ in range(repeats)]
        wall = statistics.median(r[0] for r in runs)
        step = statistics.median(r[1] for r in runs)
        products = product_seconds(model, batch)
        rows[batch] = {"tok_s": batch * new_tokens / wall, "step_ms": step * 1e3, "products_ms": products * 1e3,
                       "tokens": [c.tokens for c in runs[0][2]]}
        print(f"| {label} | {batch} | {rows[batch]['tok_s']:.1f} | {step * 1e3:.2f} | {products * 1e3:.2f} | "
              f"{step / products:.2f} | {floor_s * 1e3:.2f} | {floor_s / step:.0%} |")
    return rows


DECODE_HEADER = ("| run | batch | tok/s | ms per step | products alone ms | step / products | floor ms | "
                 "floor / step |\n|---|---|---|---|---|---|---|---|")


class Ids:
    """Token ids are the prompts of the random-weight benchmarks; nothing to decode."""
    bos_id, eos_id, pad_id = 1, 2, -1

    @staticmethod
    def decode(ids):
        return ""


def random_7b(device, dtype, batches, new_tokens, repeats, prompt_len=64, args: ModelArgs | None = None,
              compiled: bool = True) -> dict[str, float]:
    """Decode speed of a LLaMA-2-7B-shaped model (random weights) at each batch, eager and (with `compiled`)
    compiled, beside the floor: the time to read every weight once per step at the device's measured read
    bandwidth. Returns {"<eager|compiled>_tok_s_batch<B>": tok/s}."""
    model = random_transformer(args or ModelArgs(max_seq_len=4096), device, dtype)
    bandwidth = read_bandwidth(device)
    floor_s = weight_bytes(model) / bandwidth
    name = torch.cuda.get_device_name() if str(device).startswith("cuda") else describe_machine(dtype)
    print(f"random {str(dtype).removeprefix('torch.')} weights ({weight_bytes(model) / 1e9:.2f} GB), {name}, measured "
          f"read bandwidth {bandwidth / 1e9:.0f} GB/s -> floor {floor_s * 1e3:.2f} ms per decode step; {new_tokens} "
          f"new tokens after {prompt_len}-token prompts, median of {repeats}")
    print(DECODE_HEADER)

    def prompts_of(batch):
        return torch.randint(3, model.args.vocab_size, (batch, prompt_len),
                             generator=torch.Generator().manual_seed(batch)).tolist()

    out = {}
    for label in ("eager", "compiled") if compiled else ("eager",):
        if label == "compiled":
            compile_decoding(model)
        rows = decode_rows(model, Ids, prompts_of, batches, new_tokens, repeats, floor_s, label)
        out |= {f"{label}_tok_s_batch{b}": r["tok_s"] for b, r in rows.items()}
    return out
