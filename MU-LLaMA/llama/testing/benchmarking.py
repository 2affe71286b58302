"""The released models' shapes built with random weights, and the timing helpers every benchmark uses:
LLaMA-2-7B with MU-LLaMA's finetune LoRA and biases, MERT-v1-330M's config.json, MusicGen's configs, a
random MU-LLaMA pipeline allocated on the device directly, decode throughput against the device's
memory-bandwidth floor, and the machine's name for each figure."""

import statistics
import time

import torch
from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

from ..encoders.mert import MERT, hubert_config
from ..generation import generate
from ..model import ModelArgs
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


def measure_bandwidth(device) -> float:
    """Device memory bandwidth in bytes/s from a large copy (read + write)."""
    size = 2 * 1024**3 if str(device).startswith("cuda") else 256 * 1024**2
    x = torch.empty(size // 2, dtype=torch.bfloat16, device=device)
    y = torch.empty_like(x)
    seconds, _ = timed(lambda: y.copy_(x), 10)
    return 2 * x.numel() * x.element_size() / seconds


class Ids:
    """Token ids are the prompts of the random-weight benchmarks; nothing to decode."""
    bos_id, eos_id, pad_id = 1, 2, -1

    @staticmethod
    def decode(ids):
        return ""


def random_7b(device, dtype, batches, new_tokens, repeats, prompt_len=64, args: ModelArgs | None = None):
    """Decode tok/s of a LLaMA-2-7B-shaped model (random weights) at each batch, beside the floor: the
    time to read every weight once per step at the device's measured copy bandwidth."""
    model = random_transformer(args or ModelArgs(max_seq_len=4096), device, dtype)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    bandwidth = measure_bandwidth(device)
    floor_ms = weight_bytes / bandwidth * 1e3
    name = torch.cuda.get_device_name() if str(device).startswith("cuda") else describe_machine(dtype)
    print(f"random {str(dtype).removeprefix('torch.')} weights ({weight_bytes / 1e9:.2f} GB), {name}, measured copy "
          f"bandwidth {bandwidth / 1e9:.0f} GB/s -> floor {floor_ms:.2f} ms per decode step; {new_tokens} new tokens "
          f"after {prompt_len}-token prompts, median of {repeats}")
    print("| batch | tok/s | ms per step | floor ms per step | floor tok/s | step / floor |")
    print("|---|---|---|---|---|---|")
    rows = {}
    for batch in batches:
        prompts = torch.randint(3, model.args.vocab_size, (batch, prompt_len),
                                generator=torch.Generator().manual_seed(batch)).tolist()
        seconds, _ = timed(lambda p=prompts: generate(model, Ids, p, max_new_tokens=new_tokens, stop_ids=[]),
                           repeats)
        step_ms = seconds / new_tokens * 1e3  # the prefill amortised over the steps
        rows[batch] = batch * new_tokens / seconds
        print(f"| {batch} | {rows[batch]:.0f} | {step_ms:.2f} | {floor_ms:.2f} | {batch * 1e3 / floor_ms:.0f} | "
              f"{step_ms / floor_ms:.1f}x |")
    return rows
