"""The metrics behind evaluate_generation.py: Fréchet audio distance (FAD) between embedding sets, the
CLAP score of (request, clip) pairs and the KL divergence between a tagger's outputs on paired clips.

FAD: the Fréchet distance between Gaussians fitted to two sets of clip embeddings,
    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)),
means and covariances in float64, covariances normalised by N - 1 (numpy.cov). Each clip gives one
embedding: the original VGGish FAD (Kilgour et al. 2019) fits its Gaussians to every 0.96 s frame
instead, so values from here are not comparable with published VGGish FADs. With fewer clips than
dimensions the covariances are singular and FAD is biased upward, the more so the smaller the sets:
evaluate_generation.py reports the FAD between two halves of the reference set for that reason.

Embedders (files -> one float64 row per clip):
  mert: MERT's hidden states averaged over time and layers (`MERT.layer_means(...).mean(1)`), 24 kHz.
  clap: CLAP's audio embedding (`ClapModel.get_audio_features`, unit length), at its feature
    extractor's rate (48 kHz). Clips longer than 10 s are cropped (or fused) as the extractor's
    config says, at positions drawn from numpy's global RNG: seed it for repeatable numbers.
  vggish: VGGish's 128-d embedding (before the PCA and 8-bit quantisation of the AudioSet release)
    averaged over the clip's 0.96 s frames, 16 kHz; only where the torchvggish package is installed.

CLAP score: the cosine between CLAP's text embedding of a request and its audio embedding of the clip
made for it, per pair and mean, in [-1, 1] (some papers report max(100 cos, 0) instead).

KL: KL(p_ref || p_gen) between a tagger's class distributions for a reference clip and the clip made
for the same request, natural log, per pair and mean. The "clap" tagger is CLAP zero-shot: a softmax
over tag texts of the audio-text cosines times CLAP's audio logit scale (ClapModel's
`logits_per_audio`). Papers that report KL (AudioLDM, MusicGen) use AudioSet taggers (PaSST, PANNs)
over 527 classes instead: values are not comparable.
"""

import importlib.util
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from scipy.special import softmax
from tqdm import tqdm

from ..audio import AudioError, load_audio
from ..checkpoints.mert import load_mert
from ..cli import UsageError

EMBEDDERS = ("mert", "clap", "vggish")
# Short texts for CLAP zero-shot tagging: instruments, genres, tempo and mood.
DEFAULT_TAGS = ("piano", "acoustic guitar", "electric guitar", "drums", "bass", "strings", "synthesizer", "vocals",
                "rock", "pop", "jazz", "classical music", "electronic music", "hip hop", "ambient",
                "fast tempo", "slow tempo", "happy", "sad")


class Scores(NamedTuple):
    per_pair: np.ndarray
    mean: float


def frechet_distance(a, b) -> float:
    """The Fréchet distance between Gaussians fitted to embedding sets a [N, D] and b [M, D].

    Tr((S_a S_b)^(1/2)) is computed as the nuclear norm of A B^T, where S_a = A^T A and S_b = B^T B
    with A, B the centred sets over sqrt(N - 1), sqrt(M - 1): the eigenvalues of S_a S_b are the
    squared singular values of A B^T. This needs no matrix square root, so no eps is added to the
    diagonals when the covariances are singular (fewer clips than dimensions: the usual case here;
    scipy's sqrtm of the product then fails or turns complex and pytorch-fid adds 1e-6 to both), and a
    set against itself gives 0 up to rounding. The thin QR factors keep the SVD at most min(N, D) wide.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected two [N, D] embedding sets of one width, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < 2:
        raise ValueError(f"a covariance needs at least 2 embeddings per set, got {len(a)} and {len(b)}")
    centred_a = (a - a.mean(0)) / np.sqrt(len(a) - 1)
    centred_b = (b - b.mean(0)) / np.sqrt(len(b) - 1)
    r_a, r_b = np.linalg.qr(centred_a, mode="r"), np.linalg.qr(centred_b, mode="r")
    trace_root = np.linalg.svd(r_a @ r_b.T, compute_uv=False).sum()
    mean_term = np.square(a.mean(0) - b.mean(0)).sum()
    distance = mean_term + np.square(centred_a).sum() + np.square(centred_b).sum() - 2 * trace_root
    return float(max(distance, 0.0))  # equal sets can round to -1e-16


def kl_divergence(p_ref, p_gen, eps: float = 1e-6) -> Scores:
    """KL(p_ref || p_gen) of each row pair of [N, classes] probability arrays; both are floored at eps
    and renormalised first, so that a class one side gives zero probability costs a finite amount."""
    p = np.clip(np.asarray(p_ref, dtype=np.float64), eps, None)
    q = np.clip(np.asarray(p_gen, dtype=np.float64), eps, None)
    if p.shape != q.shape:
        raise ValueError(f"tagger outputs of different shapes: {p.shape} and {q.shape}")
    p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
    per_pair = (p * np.log(p / q)).sum(-1)
    return Scores(per_pair, float(per_pair.mean()))


def paired_cosines(x, y) -> Scores:
    """The cosine of each row of x with the same row of y."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    per_pair = (x * y).sum(-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1))
    return Scores(per_pair, float(per_pair.mean()))


# --- CLAP ------------------------------------------------------------------------------------------------


class ClapProcessor(NamedTuple):
    """The two halves of transformers' ClapProcessor (which this code also accepts): that class's
    constructor imports every tokenizer backend, and fails where mistral-common lacks jsonschema."""

    tokenizer: object
    feature_extractor: object


def load_clap(path, device: str = "cpu"):
    """(ClapModel, ClapProcessor) from a CLAP folder in the hub layout (laion/larger_clap_music,
    laion/clap-htsat-unfused): config.json, the weights, the tokenizer and preprocessor_config.json."""
    from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

    folder = Path(path)
    missing = [name for name in ("config.json", "preprocessor_config.json") if not (folder / name).is_file()]
    if missing:
        raise UsageError(f"--clap_path {path}: not a CLAP folder (no {' or '.join(missing)}); give a folder "
                         "holding a CLAP model as the hub has it, e.g. laion/larger_clap_music")
    model = ClapModel.from_pretrained(folder).to(device).eval()
    return model, ClapProcessor(AutoTokenizer.from_pretrained(folder), ClapFeatureExtractor.from_pretrained(folder))


@torch.no_grad()
def clap_text_embeddings(model, processor, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """[N, D] float64 unit text embeddings."""
    rows = []
    for i in range(0, len(texts), batch_size):
        inputs = processor.tokenizer(list(texts[i:i + batch_size]), padding=True, truncation=True,
                                     return_tensors="pt").to(model.device)
        rows.append(model.get_text_features(**inputs).pooler_output.double().cpu())
    return torch.cat(rows).numpy()


@torch.no_grad()
def clap_audio_embeddings(model, processor, waves: list[np.ndarray]) -> np.ndarray:
    """[N, D] float64 unit audio embeddings of mono waves at the feature extractor's sampling rate."""
    extractor = processor.feature_extractor
    inputs = extractor(list(waves), sampling_rate=extractor.sampling_rate, return_tensors="pt").to(model.device)
    return model.get_audio_features(**inputs).pooler_output.double().cpu().numpy()


def clap_score(model, processor, texts: list[str], waves: list[np.ndarray]) -> Scores:
    """The cosine between CLAP's embeddings of each text and of the wave paired with it."""
    if len(texts) != len(waves):
        raise ValueError(f"{len(texts)} texts for {len(waves)} clips: pair each clip with its text")
    return paired_cosines(clap_text_embeddings(model, processor, texts), clap_audio_embeddings(model, processor, waves))


def clap_tag_probabilities(model, audio_embeddings: np.ndarray, tag_embeddings: np.ndarray) -> np.ndarray:
    """CLAP zero-shot tagging: [N, tags] softmax of the cosines times the audio logit scale, the
    distribution ClapModel's `logits_per_audio` gives."""
    scale = model.logit_scale_a.detach().exp().item()
    return softmax(scale * audio_embeddings @ tag_embeddings.T, axis=-1)


# --- embedders: waves at `sample_rate` -> [N, D] float64 -------------------------------------------------


class MertEmbedder:
    name = "mert"

    def __init__(self, path, device: str = "cpu"):
        self.mert = load_mert(path, device=device)
        self.sample_rate = self.mert.sample_rate

    def __call__(self, waves: list[np.ndarray]) -> np.ndarray:
        return self.mert.layer_means(waves).mean(1).double().numpy()


class ClapEmbedder:
    name = "clap"

    def __init__(self, model, processor):
        self.model, self.processor = model, processor
        self.sample_rate = processor.feature_extractor.sampling_rate

    def __call__(self, waves: list[np.ndarray]) -> np.ndarray:
        return clap_audio_embeddings(self.model, self.processor, waves)


class VggishEmbedder:
    name = "vggish"
    sample_rate = 16000  # VGGish's
    frame = 15600  # samples in VGGish's first 0.96 s example (a 25 ms window, then 95 hops of 10 ms)

    def __init__(self, device: str = "cpu"):
        if importlib.util.find_spec("torchvggish") is None:
            raise UsageError("--embedder vggish needs the torchvggish package, which is not installed: "
                             "`pip install torchvggish` (it downloads VGGish's weights on first use), or use "
                             "--embedder mert or clap")
        import torchvggish

        self.examples = torchvggish.waveform_to_examples
        self.model = torchvggish.vggish(postprocess=False).to(device).eval()
        self.device = device

    @torch.no_grad()
    def __call__(self, waves: list[np.ndarray]) -> np.ndarray:
        rows = []
        for wave in waves:
            # a clip shorter than one example would give none: pad it with silence to one
            wave = np.pad(wave, (0, max(self.frame - len(wave), 0)))
            examples = torch.as_tensor(self.examples(wave, self.sample_rate)).float().to(self.device)
            rows.append(self.model(examples).mean(0).double().cpu())
        return torch.stack(rows).numpy()


def make_embedder(name: str, mert_path=None, clap=None, device: str = "cpu"):
    """The embedder called `name`; clap: the (model, processor) of load_clap, or None."""
    if name == "mert":
        if not mert_path:
            raise UsageError("--embedder mert needs --mert_path (a MERT folder such as m-a-p/MERT-v1-330M)")
        return MertEmbedder(mert_path, device)
    if name == "clap":
        if clap is None:
            raise UsageError("--embedder clap needs --clap_path (a CLAP folder such as laion/larger_clap_music)")
        return ClapEmbedder(*clap)
    if name == "vggish":
        return VggishEmbedder(device)
    raise ValueError(f"unknown embedder {name!r}; known: {EMBEDDERS}")


def embed_files(embedder, paths: list[Path], batch_size: int = 16, desc: str = "") -> tuple[dict, dict]:
    """({path: embedding} of the files that could be read, {path: why} of those that could not,
    each said on stderr by name)."""
    embedded, failed = {}, {}
    progress = tqdm(total=len(paths), unit="clip", desc=desc, disable=None, leave=False)
    for i in range(0, len(paths), batch_size):
        waves, kept = [], []
        for path in paths[i:i + batch_size]:
            try:
                waves.append(load_audio(path, embedder.sample_rate))
                kept.append(path)
            except AudioError as e:
                failed[path] = str(e)
                tqdm.write(f"skipped {path}: {e}", file=sys.stderr)
        if waves:
            embedded.update(zip(kept, embedder(waves), strict=True))
        progress.update(len(paths[i:i + batch_size]))
    progress.close()
    return embedded, failed
