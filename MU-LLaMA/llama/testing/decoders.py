"""Tiny random music decoders saved in the released folders' layouts: a MusicGen folder as
facebook/musicgen-small has it, and an AudioLDM2 diffusers pipeline folder as cvssp/audioldm2-music.

The configs keep the real ones' fields and conventions (32 kHz codec at 50 frames/s with 4 codebooks,
16 kHz vocoder with a 160-sample hop, T5 limited to 128 tokens for AudioLDM2, 8 GPT-2 tokens) at a tiny
width. No tokenizer files ship offline, so both tokenizers are trained here from a small text: a
SentencePiece unigram model with T5's special ids for T5, a byte-level BPE for CLAP's RoBERTa. The
tiny CLAP inside AudioLDM2 is also written alone, as a laion/clap-htsat-unfused folder, for the
generation metrics.
"""

import io
import random
from pathlib import Path

import sentencepiece
import torch
from diffusers import (
    AudioLDM2Pipeline,
    AudioLDM2ProjectionModel,
    AudioLDM2UNet2DConditionModel,
    AutoencoderKL,
    DDIMScheduler,
)
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    ClapAudioConfig,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapTextConfig,
    EncodecConfig,
    EncodecFeatureExtractor,
    GenerationConfig,
    GPT2Config,
    GPT2Model,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    RobertaTokenizer,
    SpeechT5HifiGan,
    SpeechT5HifiGanConfig,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)

# Words to train the tiny tokenizers on; captions the tests use draw from them too.
WORDS = ("calm upbeat slow fast loud soft happy sad dark bright warm jazz rock pop folk classical electronic "
         "ambient piano guitar drums bass violin cello flute synth organ choir melody rhythm chord beat tempo "
         "groove song track music with and a the in of an over under gentle heavy strings brass").split()


def caption_corpus(n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(n)]


def t5_tokenizer(folder, model_max_length: int, vocab_size: int = 300):
    """A T5 tokenizer (SentencePiece unigram: pad 0, eos 1, unk 2, no bos, 100 sentinels) saved in
    `folder` with its spiece.model, as the released T5 tokenizers are."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    text = caption_corpus() + [" ".join(WORDS)]
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_writer=buffer, vocab_size=vocab_size, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, hard_vocab_limit=False, minloglevel=2)
    (folder / "spiece.model").write_bytes(buffer.getvalue())
    # transformers 5 builds its tokenizers-backed T5Tokenizer by converting a folder's spiece.model.
    tokenizer = T5Tokenizer.from_pretrained(folder, model_max_length=model_max_length)
    tokenizer.save_pretrained(folder)
    return tokenizer


def roberta_tokenizer(folder, model_max_length: int = 512, vocab_size: int = 400):
    """A byte-level BPE RoBERTa tokenizer (<s> 0, <pad> 1, </s> 2, <unk> 3, as RoBERTa's) saved in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(caption_corpus(), vocab_size=vocab_size, min_frequency=1, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    vocab, merges = bpe.save_model(str(folder))
    tokenizer = RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)
    tokenizer.save_pretrained(folder)
    return tokenizer


# CLAP's audio branch reads its spectrogram as a square image as many frames wide as it has mel bins, so
# CLAP's 10 s input (480,000 samples at 48 kHz) must make at most that many frames: with 64 bins a
# 7900-sample hop makes 61.
CLAP_HOP = 7900


def tiny_clap(vocab_size: int, width: int = 16, mel_bins: int = 64) -> ClapModel:
    """A random CLAP: a 2-layer RoBERTa text branch and a 2-stage HTS-AT audio branch over `mel_bins`
    mel bands, both projected to `width`."""
    text_config = ClapTextConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=37, num_hidden_layers=2,
                                 num_attention_heads=2, max_position_embeddings=514, bos_token_id=0, pad_token_id=1,
                                 eos_token_id=2, projection_dim=width)
    audio_config = ClapAudioConfig(spec_size=mel_bins, window_size=4, num_mel_bins=mel_bins, intermediate_size=37,
                                   depths=[2, 2], num_attention_heads=[2, 2], num_hidden_layers=2, hidden_size=192,
                                   patch_size=2, patch_stride=2, patch_embed_input_channels=4, projection_dim=width)
    return ClapModel(ClapConfig(text_config=text_config.to_dict(), audio_config=audio_config.to_dict(),
                                projection_dim=width))


def write_tiny_clap(folder, seed: int = 0) -> ClapModel:
    """A laion/clap-htsat-unfused-style folder: config.json, model.safetensors, the RoBERTa tokenizer
    files and preprocessor_config.json (48 kHz ClapFeatureExtractor), each loading with its
    transformers class. Half the mel bins of AudioLDM2's tiny CLAP, a quarter of its audio patches:
    32 bins, and a 16000-sample hop for 31 frames. Returns the model that was saved."""
    folder = Path(folder)
    tokenizer = roberta_tokenizer(folder)
    torch.manual_seed(seed)
    model = tiny_clap(len(tokenizer), mel_bins=32).eval()
    model.save_pretrained(folder)
    ClapFeatureExtractor(feature_size=32, hop_length=16000).save_pretrained(folder)
    return model


def write_tiny_musicgen(folder, seed: int = 0):
    """A facebook/musicgen-small-style folder (config.json, model.safetensors, generation_config.json,
    tokenizer and preprocessor files) with a tiny T5, a tiny 32 kHz EnCodec and a 2-layer decoder over
    4 codebooks of 64 codes. Returns the model holding the weights."""
    folder = Path(folder)
    tokenizer = t5_tokenizer(folder, model_max_length=512)
    codes = 64  # codebook size; 2048 in the real codec, whose ids 2048 are then bos/pad
    text_encoder = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                            relative_attention_num_buckets=32, dropout_rate=0.1, feed_forward_proj="relu",
                            decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    # 1000 * 1.2 kbps // (50 frames/s * 6 bits) = 4 quantisers, as 2.2 kbps gives with 11-bit codebooks.
    audio_encoder = EncodecConfig(sampling_rate=32000, audio_channels=1, upsampling_ratios=[8, 5, 4, 4],
                                  target_bandwidths=[1.2], codebook_size=codes, codebook_dim=16, hidden_size=16,
                                  num_filters=4, num_residual_layers=1, num_lstm_layers=2, kernel_size=7,
                                  last_kernel_size=7, residual_kernel_size=3, dilation_growth_rate=2,
                                  norm_type="weight_norm", normalize=False, pad_mode="reflect", compress=2,
                                  use_causal_conv=False, use_conv_shortcut=False, trim_right_ratio=1.0,
                                  chunk_length_s=None, overlap=None)
    decoder = MusicgenDecoderConfig(vocab_size=codes, num_codebooks=4, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, ffn_dim=64, max_position_embeddings=2048,
                                    activation_function="gelu", dropout=0.1, attention_dropout=0.0,
                                    activation_dropout=0.0, layerdrop=0.0, initializer_factor=0.02,
                                    scale_embedding=False, audio_channels=1, tie_word_embeddings=False,
                                    pad_token_id=codes, bos_token_id=codes)
    config = MusicgenConfig(text_encoder=text_encoder, audio_encoder=audio_encoder, decoder=decoder)
    torch.manual_seed(seed)
    model = MusicgenForConditionalGeneration(config).eval()
    # transformers creates EnCodec's codebooks as zero buffers (trained ones come from a checkpoint);
    # random codes give distinct vectors, so different tokens make different audio.
    for layer in model.audio_encoder.quantizer.layers:
        layer.codebook.embed.normal_()
        layer.codebook.embed_avg.copy_(layer.codebook.embed)
    model.generation_config = GenerationConfig(do_sample=True, guidance_scale=3.0, max_length=1500,
                                               bos_token_id=codes, pad_token_id=codes, decoder_start_token_id=codes)
    model.save_pretrained(folder)
    EncodecFeatureExtractor(feature_size=1, sampling_rate=32000, padding_value=0.0).save_pretrained(folder)
    return model


def write_tiny_audioldm2(folder, seed: int = 0):
    """A cvssp/audioldm2-music-style diffusers pipeline folder: CLAP (text + audio branches) and its
    RoBERTa tokenizer, T5 (width 32, tokenizer limited to 128 tokens), projection, GPT-2 (width 16,
    8 new tokens), UNet, AutoencoderKL, DDIM and a 16 kHz HiFi-GAN with a 160-sample hop over 64 mel
    bins. Returns the pipeline that was saved; run it through `AudioLDM2Decoder.load`, since its GPT2Model
    (stored so, as in the released folders) cannot drive diffusers' generation loop under transformers 5."""
    folder = Path(folder)
    tokenizer = roberta_tokenizer(folder / "tokenizer")
    # AudioLDM2 cuts its T5 prompt at 128 tokens (a constant of the original code, stored by the
    # diffusers conversion as tokenizer_2's model_max_length).
    tokenizer_2 = t5_tokenizer(folder / "tokenizer_2", model_max_length=128)
    t5_width, gpt2_width, clap_width = 32, 16, 16
    torch.manual_seed(seed)
    text_encoder = tiny_clap(len(tokenizer), clap_width)
    text_encoder_2 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=t5_width, d_ff=37, d_kv=8,
                                             num_heads=2, num_layers=2, feed_forward_proj="gated-gelu"))
    # GPT-2's bos/eos id is its last token (50256 of 50257); its vocabulary is never used here.
    language_model = GPT2Model(GPT2Config(n_embd=gpt2_width, n_head=2, n_layer=2, vocab_size=len(tokenizer),
                                          bos_token_id=len(tokenizer) - 1, eos_token_id=len(tokenizer) - 1,
                                          n_positions=256, max_new_tokens=8))
    projection_model = AudioLDM2ProjectionModel(text_encoder_dim=clap_width, text_encoder_1_dim=t5_width,
                                                langauge_model_dim=gpt2_width)
    unet = AudioLDM2UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=([None, gpt2_width, t5_width], [None, gpt2_width, t5_width]), norm_num_groups=8)
    vae = AutoencoderKL(in_channels=1, out_channels=1, latent_channels=4, block_out_channels=(8, 16),
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=4)
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=64, sampling_rate=16000, upsample_initial_channel=32, upsample_rates=[5, 4, 2, 2, 2],
        upsample_kernel_sizes=[10, 8, 4, 4, 4], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
        normalize_before=False))
    scheduler = DDIMScheduler(beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear", steps_offset=1,
                              clip_sample=False, set_alpha_to_one=False)
    pipe = AudioLDM2Pipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, projection_model=projection_model,
        language_model=language_model, tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler,
        feature_extractor=ClapFeatureExtractor(hop_length=CLAP_HOP), vocoder=vocoder)
    pipe.save_pretrained(folder)
    return pipe
