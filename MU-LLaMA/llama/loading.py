"""Paths -> a ready model: `load` for every script, the web demo and the Python API, `assemble` for them
and for training. A checkpoint is read once (checkpoints.read_checkpoint), which says what model it holds.

Loading never holds two copies of the weights: the model is built on the `meta` device and the
checkpoint tensors, memory-mapped, are assigned in the requested dtype and device one by one (with
no copy at all when file, dtype and device already agree).
"""

import dataclasses
import sys

import torch

from .checkpoints import Checkpoint, read_checkpoint, read_llama
from .checkpoints.mert import load_mert
from .checkpoints.safetensors import EMBEDDING_ROWS, HEAD_ROWS
from .compiled import compile_decoding
from .encoders.mert import AUDIO_MODES
from .files import CheckpointError, page_dropper
from .model import ModelArgs, Transformer, is_added_parameter
from .multimodal import AUDIO_TOKENS, MODALITIES, MultimodalLLaMA
from .paths import find_tokenizer, llama_folder
from .pipeline import Pipeline
from .tokenizer import Tokenizer

BASE_WEIGHTS = ("checkpoint", "llama_dir")
ENCODER_FLAGS = {"mert": "--mert_path", "vit": "--vit_path", "vivit": "--vivit_path"}


def load(model_path, llama_dir, mert_path=None, vit_path=None, vivit_path=None, music_decoder_path=None,
         llama_type="7B", device="cpu", dtype=torch.float32, encoder_dtype=torch.float32, decoder_dtype=None,
         audio_mode=None, base_weights="checkpoint", stop_rules="default", music_decoder=None,
         compile=False) -> Pipeline:
    """A ready MU-LLaMA or MuMu-LLaMA (as the checkpoint holds): a Pipeline (`answer`, `stream`, `respond`,
    `music`) around the frozen network in eval mode (`.model`) and its tokenizer.

    model_path: a released `checkpoint.pth` (MU-LLaMA's or M2UGen's) or this project's `.safetensors`, or
      that file as `checkpoints.read_checkpoint` read it (what the command lines pass: one read per run).
    llama_dir: the base LLaMA; `llama_dir/llama_type` when that folder exists (upstream layout,
      tokenizer.model in llama_dir), else llama_dir itself, else its one weights subfolder (Meta's
      download.sh layout); also a weight file, an HF cache folder or a hub id. Meta or HF format.
    mert_path / vit_path / vivit_path: encoder folders (or hub ids), each needed only for inputs of its
      kind, run in `encoder_dtype` (fp32 by default, as the original); the frozen copies inside a released
      checkpoint are not read (the same weights).
    music_decoder_path: a MusicGen, AudioLDM2 or note-event decoder folder, as the checkpoint was trained
      for (None: answers only), run in `decoder_dtype` (default `dtype`); `music_decoder` names the kind
      when the caller wants it checked against the checkpoint's.
    base_weights: when a MU-LLaMA checkpoint carries its own base LLaMA (the released one does) and it
      differs from llama_dir's: "checkpoint" uses it, as the original code did; "llama_dir" keeps the
      folder's (see `choose_base`). A released M2UGen checkpoint's base is always its own (the original's).
    audio_mode: how clips are encoded by default: "full" (whole clip, 60 s windows) or "upstream" (only
      the first 60 s, as the original code); None: the model's own default (MU-LLaMA full, MuMu-LLaMA
      upstream: the config's `audio_mode`).
    stop_rules: "default" (EOS) or "upstream" (the original M2UGen's: EOS ignored, answer cut at its first
      newline).
    compile: decode with the LLM's decoding step compiled by torch.compile (compiled.py; the first answer
      compiles it, which takes a while; on the CPU it needs a C++ compiler).
    """
    if audio_mode not in (None, *AUDIO_MODES):
        raise ValueError(f"audio_mode must be one of {AUDIO_MODES}, not {audio_mode!r}")
    if base_weights not in BASE_WEIGHTS:
        raise ValueError(f"base_weights must be one of {BASE_WEIGHTS}, not {base_weights!r}")
    checkpoint = model_path if isinstance(model_path, Checkpoint) else read_checkpoint(model_path)
    model_path, config = checkpoint.path, checkpoint.config
    music = config.music_output is not None
    if music_decoder and music_decoder != getattr(config, "music_decoder", None):
        raise CheckpointError(f"{model_path} was trained for {getattr(config, 'music_decoder', 'no music decoder')}, "
                              f"not {music_decoder}: its output projector fits that decoder only")
    folder = llama_folder(llama_dir, llama_type)  # a wrong --llama_dir is said before an encoder is loaded
    encoders = load_encoders(config, {"mert": mert_path, "vit": vit_path, "vivit": vivit_path}, device,
                             encoder_dtype)
    decoder = None
    if music_decoder_path and music:
        from .decoders import load_decoder

        decoder = load_decoder(config.music_decoder, music_decoder_path, device=device, dtype=decoder_dtype or dtype)
    model, tokenizer = assemble(config, folder, checkpoint.tensors, checkpoint.base, encoders=encoders,
                                base_weights=base_weights, source=model_path, device=device, dtype=dtype)
    if music:
        warn_closed_gates(model, model_path)
    if compile:
        compile_decoding(model.llama)
    return Pipeline(model.requires_grad_(False).eval(), tokenizer, decoder, stop_rules, audio_mode or config.audio_mode)


load_mumu = load  # the same function: the checkpoint says which model it holds


def load_encoders(config, paths: dict, device, dtype) -> dict:
    """{"mert", "vit", "vivit"}: each of the model's modalities' encoder whose folder `paths` gives, checked
    against its bridge."""
    from .encoders.vit import load_vit
    from .encoders.vivit import load_vivit

    loaders = {"mert": load_mert, "vit": load_vit, "vivit": load_vivit}
    names = [MODALITIES[m].encoder for m in config.modalities]
    encoders = {name: loaders[name](paths[name], device=device, dtype=dtype) for name in names if paths.get(name)}
    check_encoders(config, encoders, paths)
    return encoders


def check_encoders(config, encoders: dict, paths: dict) -> None:
    """Each encoder given must give what its modality's bridge reads."""
    for modality in config.modalities:
        name = MODALITIES[modality].encoder
        encoder, expected = encoders.get(name), config.encoder_shape(modality)
        if encoder is not None and encoder.shape != expected:
            flag = ENCODER_FLAGS[name]
            raise CheckpointError(f"the encoder given as {flag} ({paths[name]}) gives {encoder.shape[0]} x "
                                  f"{encoder.shape[1]} features, the checkpoint's bridge reads {expected[0]} x "
                                  f"{expected[1]}: {flag} holds another model")


def assemble(config, folder, tensors: dict | None, base: dict | None = None, *, encoders: dict | None = None,
             base_weights: str = "checkpoint", source=None, device="cpu", dtype=torch.float32,
             seed: int | None = None) -> tuple[MultimodalLLaMA, Tokenizer]:
    """The one assembly of a model, for answering and for training: the backbone in `folder` with the parts
    `config` needs, the tokenizer beside it (with the [AUD] tokens of a model with music output), the
    encoders given, the bridges, the prefix and the projector.

    tensors: a checkpoint's trained tensors: the bridges, prefix and projector are assigned from them with no
      initialisation, and the backbone's (norms, gates, LoRA, biases, embedding rows) override the base.
      None: the bridges, the prefix and any LoRA are initialised, each after seeding with `seed` (the same
      model on every process and in every run): training from scratch.
    base: the base LLaMA a released checkpoint `source` carries: M2UGen's is taken whole (its inference
      does); MU-LLaMA's as `base_weights` says (choose_base).
    """
    args, state = read_llama(folder, **config.backbone_args())
    music = config.music_output is not None
    tensors = dict(tensors) if tensors is not None else None
    if music:
        state = with_audio_rows(args, state, tensors, base, source or folder, folder, device, dtype)
        args = dataclasses.replace(args, vocab_size=state["tok_embeddings.weight"].shape[0])
    elif base:
        state = choose_base(state, base, base_weights, source, folder, args.n_layers)
    if seed is not None:
        torch.manual_seed(seed)
    llama = build_llama(args, state, source or folder, device, dtype)
    tokenizer = Tokenizer(find_tokenizer(folder))
    if music and tokenizer.add_tokens(list(AUDIO_TOKENS)) != list(range(args.vocab_size - 8, args.vocab_size)):
        raise CheckpointError(f"the tokenizer in {folder} has {tokenizer.n_words - 8} tokens, but {source}'s "
                              f"embedding has {args.vocab_size} rows (expected the tokenizer's plus 8 [AUD] tokens): "
                              "--llama_dir holds another tokenizer")
    if tensors is None:
        if seed is not None:
            torch.manual_seed(seed)
        return MultimodalLLaMA(llama, config, encoders).to(device), tokenizer
    with torch.device("meta"):  # only the bridges, prefix and projector are new here: llama and encoders are built
        model = MultimodalLLaMA(llama, config, encoders)
    tensors.pop("llama.tok_embeddings.weight", None)  # in the base state already
    kept = model.checkpoint_state()
    expected = {k: v.shape for k, v in kept.items() if k != "llama.tok_embeddings.weight"}
    # The backbone's trained tensors (norms, gates, LoRA, biases) override the base where present.
    check_shapes(expected, tensors, source, optional={k for k in expected if k.startswith("llama.")})
    # A released M2UGen file larger than RAM is mapped shared (files.torch_load): what is kept is copied.
    model.load_state_dict({k: v.to(device=device, dtype=dtype, copy=music) for k, v in tensors.items()},
                          strict=False, assign=True)
    return model, tokenizer


def with_audio_rows(args: ModelArgs, state: dict, tensors: dict | None, base: dict | None, source, folder, device,
                    dtype) -> dict:
    """The base state of a model with music output: a released checkpoint's own LLaMA, copied tensor by
    tensor (its pages dropped once copied, so that they do not add up in memory), or llama_dir's with the
    trained embedding (or its [AUD] rows) and the head's [AUD] rows from `tensors` (a tied head is the
    embedding itself)."""
    if base:
        drop = page_dropper(source)
        state = {}
        for key, value in base.items():
            state[key] = value.to(device=device, dtype=dtype, copy=True)
            drop(value)
        return state
    embedding = state["tok_embeddings.weight"]
    rows = tensors.pop(EMBEDDING_ROWS, None)
    state["tok_embeddings.weight"] = (torch.cat([embedding, rows.to(embedding)]) if rows is not None
                                      else tensors.pop("llama.tok_embeddings.weight"))
    head = tensors.pop(HEAD_ROWS, None)
    if not args.tie_embeddings:
        if head is None:
            raise CheckpointError(f"{source} lacks the output head's [AUD] rows ({HEAD_ROWS}) that an untied "
                                  f"backbone needs: {folder} holds another model than it was trained on")
        state["output.weight"] = torch.cat([state["output.weight"], head.to(state["output.weight"])])
    return state


def choose_base(state: dict, embedded: dict, policy: str, model_path, llama_dir, n_layers: int) -> dict:
    """The base LLaMA tensors to build a MU-LLaMA from, when its checkpoint carries its own copy.

    The original code loaded `llama_dir`'s base and then overwrote it with the checkpoint's, so its
    answers follow the checkpoint's base. The two are compared on the first and last row of the
    embedding, the output head and every matrix of the first, middle and last layer, memory-mapped:
    another base model (LLaMA-1, a chat model) differs everywhere, and on a cold page cache every row
    compared costs a disk seek (all rows of all tensors: 30 s at 7B; these: about 1 s). When they
    differ, `policy` "checkpoint" (the original's behaviour) takes the checkpoint's tensors,
    "llama_dir" keeps the folder's, and one line says which and by how much.
    """
    for key, ours in state.items():
        theirs = embedded.get(key)
        if theirs is not None and theirs.shape != ours.shape:
            raise CheckpointError(f"{model_path} carries a base LLaMA whose {key} is {tuple(theirs.shape)}, but "
                                  f"{llama_dir} holds {tuple(ours.shape)}: --llama_dir holds another model size")
    layers = {f"layers.{i}." for i in (0, n_layers // 2, n_layers - 1)}
    compared = [k for k in state if k in embedded and (not k.startswith("layers.") or k.startswith(tuple(layers)))]
    differing, largest = 0, 0.0
    for key in compared:
        ours, theirs = state[key], embedded[key]
        rows = [0, ours.shape[0] - 1]
        # The original cast llama_dir's weights to the checkpoint's dtype before it overwrote them.
        diff = (ours[rows].to(theirs.dtype).float() - theirs[rows].float()).abs().max().item()
        if diff > 0:
            differing, largest = differing + 1, max(largest, diff)
    if not differing:
        return state
    used = model_path if policy == "checkpoint" else llama_dir
    print(f"the base LLaMA inside {model_path} differs from {llama_dir}'s ({differing} of {len(compared)} tensors "
          f"compared, largest difference {largest:.3g}): using {used}'s, "
          + ("as the original code did (--base_weights llama_dir keeps the folder's)" if policy == "checkpoint"
             else "as --base_weights llama_dir asks (the original code used the checkpoint's)"), file=sys.stderr)
    if policy == "checkpoint":
        state.update({k: embedded[k] for k in state if k in embedded})
    return state


def load_llama(path, device="cpu", dtype=torch.float32, llama_type: str | None = None, **overrides) -> Transformer:
    """The LLaMA in a Meta- or HF-format folder, in `dtype` on `device`, in eval mode, frozen.

    path: the folder, a file in it, a folder with one weights subfolder (Meta's download.sh
      layout; `llama_type` names one of several), an HF cache folder or a hub id.
    overrides: ModelArgs fields to change (e.g. w_bias=True, w_lora=True, max_seq_len=...).
    """
    folder = llama_folder(path, llama_type)
    args, state = read_llama(folder, **overrides)
    return build_llama(args, state, folder, device, dtype)


def build_llama(args: ModelArgs, state: dict, source, device="cpu", dtype=torch.float32) -> Transformer:
    """A frozen Transformer from a state dict with Meta names, built on `meta` and assigned tensor by tensor."""
    with torch.device("meta"):
        model = Transformer(args)
    expected = {k: v.shape for k, v in model.state_dict().items() if not is_added_parameter(k)}
    if args.tie_embeddings:
        expected.pop("output.weight")
        state.pop("output.weight", None)  # some tied checkpoints still store the head
    check_shapes(expected, state, source)
    for key in list(state):  # one tensor at a time: never a second copy of the whole model
        state[key] = state[key].to(device=device, dtype=dtype)
    model.load_state_dict(state, strict=False, assign=True)
    del state
    init_added_parameters(model, device, dtype)
    if args.tie_embeddings:
        model.output.weight = model.tok_embeddings.weight
    model.requires_grad_(False)
    return model.eval()


def check_shapes(expected: dict, state: dict, source, optional=frozenset()) -> None:
    """One error listing every missing, unexpected and wrong-shaped tensor.

    expected: name -> shape of what the model takes; names in `optional` may be absent.
    """
    missing = sorted(set(expected) - set(state) - set(optional))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k])}"
             for k in sorted(set(expected) & set(state)) if tuple(state[k].shape) != tuple(expected[k])]
    problems = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            shown = items[:20] + ([f"... and {len(items) - 20} more"] if len(items) > 20 else [])
            problems.append(f"{len(items)} {title}:\n  " + "\n  ".join(shown))
    if problems:
        raise CheckpointError(f"checkpoint {source} does not fit the model:\n" + "\n".join(problems))


def init_added_parameters(model: torch.nn.Module, device, dtype) -> None:
    """Give parameters that no checkpoint provided (still on `meta`) their initial values:
    zeros for gates, biases and LoRA up-projections, nn.Linear's default for LoRA down-projections."""
    for name, param in list(model.named_parameters()):
        if not param.is_meta:
            continue
        value = torch.zeros(param.shape, device=device, dtype=dtype)
        if name.endswith("_l1.weight"):
            torch.nn.init.kaiming_uniform_(value, a=5 ** 0.5)
        owner, _, attr = name.rpartition(".")
        setattr(model.get_submodule(owner), attr, torch.nn.Parameter(value, requires_grad=param.requires_grad))


def warn_closed_gates(model: MultimodalLLaMA, source) -> None:
    """The original M2UGen training never trains the attention gates, so in its checkpoints every gate is
    0: the encoders, bridges and prefix rows then cannot change a single logit. Say so once."""
    gates = [p for n, p in model.llama.named_parameters() if n.endswith(".gate")]
    if gates and all(not g.any() for g in gates):
        print(f"warning: every attention gate in {source} is zero, so music, image and video inputs cannot change "
              "the answers (the original training never trained the gates; see docs/mumu-llama.md)", file=sys.stderr)
