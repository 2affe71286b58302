"""The one assembly point: paths -> a ready model. Inference, training and every script build here.

Loading never holds two copies of the weights: the model is built on the `meta` device and the
checkpoint tensors, memory-mapped, are assigned in the requested dtype and device one by one (with
no copy at all when file, dtype and device already agree).
"""

import dataclasses
import sys

import torch

from .encoders.mert import AUDIO_MODES, MERT
from .files import CheckpointError, page_dropper
from .formats import read_llama
from .formats.mert import load_mert
from .formats.mu_llama import read_mu_llama_with_base
from .formats.mumu import EMBEDDING_ROWS, HEAD_ROWS, is_mumu_checkpoint, read_mumu
from .model import ModelArgs, Transformer, is_added_parameter
from .mu_llama import MULLaMA, MULLaMAConfig
from .mumu_llama import AUDIO_TOKENS, MuMuConfig, MuMuLLaMA
from .paths import find_tokenizer, llama_folder
from .pipeline import MuMuPipeline, Pipeline
from .tokenizer import Tokenizer

BASE_WEIGHTS = ("checkpoint", "llama_dir")


def load(model_path, llama_dir, mert_path, llama_type="7B", device="cpu", dtype=torch.float32,
         audio_mode="full", mert_dtype=torch.float32, base_weights="checkpoint"):
    """A ready MU-LLaMA: a Pipeline (`answer`, `stream`, `load_clip`) around the frozen network in eval
    mode (`.model`) and its tokenizer. Given a MuMu-LLaMA (M2UGen) checkpoint, a MuMuPipeline instead
    (`load_mumu`: music input only; `load_mumu` takes the image, video and decoder folders too).

    model_path: the released `checkpoint.pth` or this project's `.safetensors`.
    llama_dir: the base LLaMA; `llama_dir/llama_type` when that folder exists (upstream layout,
      tokenizer.model in llama_dir), else llama_dir itself, else its one weights subfolder (Meta's
      download.sh layout); also a weight file, an HF cache folder or a hub id. Meta or HF format.
    mert_path: a MERT checkpoint folder or hub id. MERT runs in `mert_dtype` (fp32 by default, as upstream).
    base_weights: when the checkpoint carries its own base LLaMA (the released checkpoint.pth does)
      and it differs from llama_dir's: "checkpoint" uses it, as the original code did; "llama_dir"
      keeps the folder's (see `choose_base`).
    audio_mode: how `answer` encodes clips by default: "full" (whole clip, 60 s windows) or
      "upstream" (only the first 60 s, as the original code).
    """
    if audio_mode not in AUDIO_MODES:
        raise ValueError(f"audio_mode must be one of {AUDIO_MODES}, not {audio_mode!r}")
    if is_mumu_checkpoint(model_path):
        return load_mumu(model_path, llama_dir, mert_path, llama_type=llama_type, device=device, dtype=dtype,
                         encoder_dtype=mert_dtype, audio_mode=audio_mode)
    if base_weights not in BASE_WEIGHTS:
        raise ValueError(f"base_weights must be one of {BASE_WEIGHTS}, not {base_weights!r}")
    tensors, config, embedded = read_mu_llama_with_base(model_path)
    llama_dir = llama_folder(llama_dir, llama_type)  # a wrong --llama_dir is said before MERT is loaded
    mert = load_mert(mert_path, device=device, dtype=mert_dtype)
    if (mert.num_layers, mert.hidden_size) != (config.mert_layers, config.mert_dim):
        raise CheckpointError(f"the MERT in {mert_path} gives {mert.num_layers} layers x {mert.hidden_size}, "
                              f"the checkpoint's bridge expects {config.mert_layers} x {config.mert_dim}")
    model, tokenizer = mu_llama(config, llama_dir, mert, llama_type=None, tensors=tensors, embedded=embedded,
                                base_weights=base_weights, source=model_path, device=device, dtype=dtype)
    return Pipeline(model.requires_grad_(False).eval(), tokenizer, audio_mode)


def mu_llama(config: MULLaMAConfig, llama_dir, mert: MERT | None, *, llama_type: str | None = "7B",
             tensors: dict | None = None, embedded: dict | None = None, base_weights: str = "checkpoint",
             source=None, device="cpu", dtype=torch.float32, seed: int | None = None) -> tuple[MULLaMA, Tokenizer]:
    """The one assembly of a MU-LLaMA, for answering and for training: the backbone in `llama_dir` with
    the parts `config`'s phase needs, the tokenizer beside it, the encoder `mert` (None: features come
    from a cache), the bridge and the prefix.

    tensors: a checkpoint's trained tensors (read_mu_llama): the bridge and prefix are assigned from
      them with no initialisation, and the backbone's (norms, gates, LoRA, biases) override the base.
      None: the bridge, the prefix and any LoRA are initialised, each after seeding with `seed` (the
      same model on every process and in every run): training from scratch.
    embedded: the base LLaMA the checkpoint `source` carries, used as `base_weights` says (choose_base).
    """
    folder = llama_folder(llama_dir, llama_type)
    args, state = read_llama(folder, **config.backbone_args())
    if embedded:
        state = choose_base(state, embedded, base_weights, source, folder, args.n_layers)
    if seed is not None:
        torch.manual_seed(seed)
    llama = build_llama(args, state, folder, device, dtype)
    tokenizer = Tokenizer(find_tokenizer(folder))
    if tensors is None:
        if seed is not None:
            torch.manual_seed(seed)
        return MULLaMA(llama, mert, config).to(device), tokenizer
    with torch.device("meta"):  # only the bridge and prefix are new here; llama and mert are already loaded
        model = MULLaMA(llama, mert, config)
    names = model.checkpointed_names()
    expected = {k: v.shape for k, v in model.state_dict().items() if k in names}
    # The backbone's trained tensors (norms, gates, LoRA, biases) override the base where present.
    check_shapes(expected, tensors, source, optional={k for k in expected if k.startswith("llama.")})
    model.load_state_dict({k: v.to(device=device, dtype=dtype) for k, v in tensors.items()},
                          strict=False, assign=True)
    return model, tokenizer


def choose_base(state: dict, embedded: dict, policy: str, model_path, llama_dir, n_layers: int) -> dict:
    """The base LLaMA tensors to build the model from, when the checkpoint carries its own copy.

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


def load_mumu(model_path, llama_dir, mert_path=None, vit_path=None, vivit_path=None, music_decoder_path=None,
              llama_type="7B", device="cpu", dtype=torch.float32, encoder_dtype=torch.float32, decoder_dtype=None,
              stop_rules="default", audio_mode="upstream", music_decoder=None) -> MuMuPipeline:
    """A ready MuMu-LLaMA (M2UGen): a MuMuPipeline (`respond`, `music`) around the frozen network.

    model_path: the released M2UGen checkpoint.pth (every LLaMA weight is taken from it, as the
      original's inference does; llama_dir gives params.json and the tokenizer) or this project's
      .safetensors (the base from llama_dir, the trained tensors from the file).
    mert_path / vit_path / vivit_path: encoder folders, each needed only for inputs of its kind; the
      frozen copies inside checkpoint.pth are not read (they are the same weights).
    music_decoder_path: a MusicGen folder or an AudioLDM2 pipeline folder, as the checkpoint was
      trained for (None: answers only). The decoder runs in `decoder_dtype` (default `dtype`).
    music_decoder: "musicgen" or "audioldm2" when the caller names one: checked against the checkpoint's.
    """
    from .decoders import load_decoder
    from .encoders.vit import load_vit
    from .encoders.vivit import load_vivit

    tensors, config, embedded = read_mumu(model_path)
    if music_decoder and music_decoder != config.music_decoder:
        raise CheckpointError(f"{model_path} was trained for {config.music_decoder}, not {music_decoder}: its output "
                              f"projector fits that decoder only (--music_decoder {config.music_decoder})")
    folder = llama_folder(llama_dir, llama_type)
    encoders = {"mert": load_mert(mert_path, device=device, dtype=encoder_dtype) if mert_path else None,
                "vit": load_vit(vit_path, device=device, dtype=encoder_dtype) if vit_path else None,
                "vivit": load_vivit(vivit_path, device=device, dtype=encoder_dtype) if vivit_path else None}
    check_encoders(config, encoders)
    decoder = None
    if music_decoder_path:
        decoder = load_decoder(config.music_decoder, music_decoder_path, device=device, dtype=decoder_dtype or dtype)
    model, tokenizer = mumu_llama(config, folder, tensors, embedded, source=model_path, device=device, dtype=dtype,
                                  **encoders)
    warn_closed_gates(model, model_path)
    return MuMuPipeline(model.requires_grad_(False).eval(), tokenizer, decoder, stop_rules, audio_mode)


def check_encoders(config: MuMuConfig, encoders: dict) -> None:
    """Each given encoder must give what its bridge reads."""
    for name, flag, shape in (("mert", "--mert_path", (config.mert_layers, config.mert_dim)),
                              ("vit", "--vit_path", (config.vit_tokens, config.vit_dim)),
                              ("vivit", "--vivit_path", (config.vivit_tokens, config.vivit_dim))):
        encoder = encoders[name]
        if encoder is None:
            continue
        got = (encoder.num_layers, encoder.hidden_size) if name == "mert" else (encoder.tokens, encoder.width)
        if got != shape:
            raise CheckpointError(f"the encoder given as {flag} gives {got[0]} x {got[1]} features, the checkpoint's "
                                  f"bridge reads {shape[0]} x {shape[1]}: {flag} holds another model")


def mumu_llama(config: MuMuConfig, folder, tensors: dict, embedded: dict, *, source=None, device="cpu",
               dtype=torch.float32, mert=None, vit=None, vivit=None) -> tuple[MuMuLLaMA, Tokenizer]:
    """A MuMu-LLaMA from a checkpoint's tensors (read_mumu) and the LLaMA folder (params.json, the
    tokenizer; and the base weights when the checkpoint does not carry them)."""
    args, state = read_llama(folder, **config.backbone_args())
    tensors = dict(tensors)
    if embedded:  # the released checkpoint.pth: every LLaMA weight from it, copied, one tensor at a time:
        # a file larger than RAM is mapped shared (files.torch_load), and no kept tensor may alias it;
        # each source tensor's pages are dropped once copied, so they do not add up in memory
        drop = page_dropper(source)
        state = {}
        for key, value in embedded.items():
            state[key] = value.to(device=device, dtype=dtype, copy=True)
            drop(value)
    else:  # this project's file: the trained embedding (or its [AUD] rows) and the head's [AUD] rows over
        # llama_dir's base; a tied head is the embedding itself
        base = state["tok_embeddings.weight"]
        rows = tensors.pop(EMBEDDING_ROWS, None)
        state["tok_embeddings.weight"] = (torch.cat([base, rows.to(base)]) if rows is not None
                                          else tensors.pop("llama.tok_embeddings.weight"))
        head = tensors.pop(HEAD_ROWS, None)
        if not args.tie_embeddings:
            if head is None:
                raise CheckpointError(f"{source} lacks the output head's [AUD] rows ({HEAD_ROWS}) that an untied "
                                      f"backbone needs: {folder} holds another model than it was trained on")
            state["output.weight"] = torch.cat([state["output.weight"], head.to(state["output.weight"])])
    args = dataclasses.replace(args, vocab_size=state["tok_embeddings.weight"].shape[0])
    llama = build_llama(args, state, source, device, dtype)
    tokenizer = Tokenizer(find_tokenizer(folder))
    with torch.device("meta"):  # only the bridges, prefix and projector are new here
        model = MuMuLLaMA(llama, config, mert, vit, vivit)
    ids = tokenizer.add_tokens(list(AUDIO_TOKENS))
    if ids != model.audio_token_ids:
        raise CheckpointError(f"the tokenizer in {folder} has {tokenizer.n_words - len(ids)} tokens, but {source}'s "
                              f"embedding has {args.vocab_size} rows (expected the tokenizer's plus 8 [AUD] tokens): "
                              "--llama_dir holds another tokenizer")
    tensors.pop("llama.tok_embeddings.weight", None)  # already in the base state
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    backbone = {k for k in shapes if k.startswith("llama.") and (is_added_parameter(k) or k.endswith("norm.weight"))}
    frozen = ("llama.", "mert.", "vit.", "vivit.")  # built already
    expected = {k: shapes[k] for k in shapes if not k.startswith(frozen) or k in backbone}
    check_shapes(expected, tensors, source, optional=backbone)
    model.load_state_dict({k: v.to(device=device, dtype=dtype, copy=True) for k, v in tensors.items()}, strict=False,
                          assign=True)
    return model, tokenizer


def initial_mumu_tensors(config: MuMuConfig, folder, seed: int = 0) -> dict:
    """The trained tensors of a MuMu-LLaMA before stage 1, for `mumu_llama`: the bridges, prefix and
    projector at PyTorch's default initialisation (seeded), the base embedding with 8 rows of ones for
    the [AUD] tokens and 8 new head rows at nn.Linear's default initialisation (as the original; the
    head rows are never trained; none for a tied head, which is the embedding). The backbone's norms
    come from the base; gates, biases and LoRA start as `init_added_parameters` sets them."""
    args, state = read_llama(folder, **config.backbone_args())
    torch.manual_seed(seed)
    with torch.device("meta"):  # only the new modules are materialised
        llama = Transformer(args)
    fresh = MuMuLLaMA(llama, config)
    tensors = {k: v for k, v in fresh.state_dict().items() if not k.startswith("llama.")}
    embedding = state["tok_embeddings.weight"]
    tensors["llama.tok_embeddings.weight"] = torch.cat(
        [embedding, torch.ones(len(AUDIO_TOKENS), args.dim, dtype=embedding.dtype)])
    if not args.tie_embeddings:  # a tied head is the embedding, [AUD] rows included
        tensors[HEAD_ROWS] = torch.nn.Linear(args.dim, len(AUDIO_TOKENS), bias=False).weight.detach()
    return tensors


def warn_closed_gates(model: MuMuLLaMA, source) -> None:
    """The original's training never trains the attention gates, so in its checkpoints every gate is
    0: the encoders, bridges and prefix rows then cannot change a single logit. Say so once."""
    gates = [p for n, p in model.llama.named_parameters() if n.endswith(".gate")]
    if gates and all(not g.any() for g in gates):
        print(f"warning: every attention gate in {source} is zero, so music, image and video inputs cannot change "
              "the answers (the original training never trained the gates; see README, MuMu-LLaMA)", file=sys.stderr)
