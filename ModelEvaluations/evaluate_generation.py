"""Score generated music: FAD against reference audio, CLAP score against the requests, and the KL
divergence of a tagger's outputs against each request's reference, each beside its controls.

    python ModelEvaluations/evaluate_generation.py --generated results/mumu/generated.jsonl \\
        --reference eval/references --embedder clap --clap_path ckpts/larger_clap_music --tagger clap \\
        --output results/generation_metrics

--generated: the generated.jsonl of generate_mumu.py ({"id", "prompt", "output": WAV, "reference"?}, or
"error" for a request that made no music), or a folder of audio (FAD only: it holds no requests).
--reference: a folder of audio (searched recursively), a JSON/JSONL of paths or of records with a
"reference" (generate_mumu.py's requests file does), or a text file of paths, one a line; without it,
the references the generated records name. Relative paths are relative to the file that holds them.

Beside the model's row every run reports two controls, and a third with --shuffled:
  shuffled_control: the CLAP score and KL with each generated clip paired with another request's text
    and reference (a seeded derangement): what the metrics give a model that ignores the request.
  reference_halves: the FAD between two halves of the reference set (seeded split): what FAD is between
    two samples of the same music at this set size.
  shuffled_requests: every metric (FAD with any embedder, CLAP score, KL) of the music generate_mumu.py
    --shuffle_requests made (each request's inputs answered with another request's prompt), against the same
    references: needs no CLAP model, so it reads offline.
FAD is reported only where both sets hold at least --min_fad_clips clips (100 by default): on smaller sets
it is dominated by its small-sample bias (a model's FAD can then "beat" the reference set's own halves), so
the table says n/a and why instead of a number.
llama/evaluation/generation_metrics.py says how each metric is computed. A file that cannot be read is named on stderr,
left out and counted.

Writes OUTPUT/results.json ({"model", "shuffled_control", "reference_halves": {metric: value, ...},
"counts", "settings"}), results.md (the table, also printed) and per_clip.jsonl (each generated clip's
scores, for significance tests).
"""

import argparse
import json
import platform
import random
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import transformers

from llama.cli import UsageError, run_main
from llama.data.dataset import derangement, read_json_records
from llama.evaluation import generation_metrics as gm
from llama.flags import HelpFormatter, add_debug_argument, positive_int
from llama.records import atomic_path, json_line

AUDIO_EXTENSIONS = {".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".wma"}
LIBRARIES = ("torch", "transformers", "numpy", "scipy", "soundfile", "soxr")
ROWS = ("model", "shuffled_control", "reference_halves", "shuffled_requests")
MIN_FAD_CLIPS = 100
NOTE = """\
How to read this table:
- `shuffled_control` scores the same generated clips, each paired with another request's text (CLAP score)
  and another request's reference (KL), by a seeded derangement. The gap between `model` and this row is
  what comes from following the request; a model that ignores its requests scores alike on both rows.
- `reference_halves` is the FAD between two random halves of the reference set: the FAD of two samples of
  the same music at this size. FAD is biased upward on small sets (each half holds half the clips), so a
  model's FAD is judged against this row, not against 0.
- `shuffled_requests` is the music made for shuffled requests (generate_mumu.py --shuffle_requests), scored
  like the model's: a model that follows its requests scores better on `model` than here.
- CLAP score: cosine in [-1, 1], higher is closer. KL(reference || generated) of the tagger's outputs and
  FAD: lower is closer. One embedding per clip: not comparable with published frame-level VGGish FADs.
"""


def audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def read_generated(path: Path) -> tuple[list[dict], dict]:
    """The generated records ({"id", "prompt", "output": Path, "reference": Path | None}) and the
    {id: error} of requests that made no music."""
    if path.is_dir():
        return [{"id": p.stem, "prompt": None, "output": p, "reference": None} for p in audio_files(path)], {}
    try:
        raw = read_json_records(path)
    except ValueError as e:
        raise UsageError(str(e)) from None
    items, errors = [], {}
    for i, record in enumerate(raw):
        if not (isinstance(record, dict) and "id" in record and ("output" in record or "error" in record)):
            raise UsageError(f"{path}, record {i}: expected {{'id', 'prompt', 'output' or 'error', 'reference'?}} "
                             f"as generate_mumu.py writes, got {str(record)[:200]}")
        if "error" in record:
            errors[str(record["id"])] = record["error"]
            continue
        reference = record.get("reference")
        items.append({"id": str(record["id"]), "prompt": record.get("prompt"), "output": path.parent / record["output"],
                      "reference": path.parent / reference if reference else None})
    return items, errors


def read_references(path: Path) -> list[Path]:
    """The audio files of a folder, a JSON/JSONL list (paths, or records with a "reference") or a text list."""
    if path.is_dir():
        return audio_files(path)
    if path.suffix in (".json", ".jsonl"):
        try:
            raw = read_json_records(path)
        except ValueError as e:
            raise UsageError(str(e)) from None
        names = [r if isinstance(r, str) else r.get("reference") for r in raw if isinstance(r, str | dict)]
    else:
        names = path.read_text().splitlines()
    return list(dict.fromkeys(path.parent / n.strip() for n in names if n and n.strip()))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--generated", required=True, type=Path, help="generate_mumu.py's generated.jsonl, or a folder")
    parser.add_argument("--reference", type=Path, help="reference audio: a folder, a JSON/JSONL or a list file "
                        "(default: the references the generated records name)")
    parser.add_argument("--shuffled", type=Path, help="the generated.jsonl of generate_mumu.py --shuffle_requests "
                        "over the same requests: scored as the model's row, as the shuffled_requests control")
    parser.add_argument("--min_fad_clips", type=positive_int, default=MIN_FAD_CLIPS,
                        help="FAD is reported only where both sets hold at least this many clips")
    parser.add_argument("--metrics", nargs="+", choices=("fad", "clap_score"), default=["fad", "clap_score"],
                        help="fad: Frechet audio distance of the generated clips to the references (with --embedder); "
                             "clap_score: CLAP cosine of each clip and its request (needs --clap_path)")
    parser.add_argument("--embedder", choices=gm.EMBEDDERS, default="clap", help="FAD's clip embeddings")
    parser.add_argument("--mert_path", help="MERT folder, for --embedder mert")
    parser.add_argument("--clap_path", help="CLAP folder (e.g. laion/larger_clap_music), for the CLAP score, "
                        "--embedder clap and --tagger clap")
    parser.add_argument("--tagger", choices=("clap",), help="compute KL(reference || generated) of this tagger's "
                        "outputs (clap: zero-shot over --tags); needs generated records that name a reference")
    parser.add_argument("--tags", nargs="+", default=list(gm.DEFAULT_TAGS), help="tag texts of the clap tagger")
    parser.add_argument("--seed", type=int, default=0, help="seeds the derangement, the halves and CLAP's crops")
    parser.add_argument("--batch_size", type=positive_int, default=16, help="clips embedded at once")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu, cuda or cuda:N, for the embedders (the default: cuda where PyTorch sees a GPU)")
    parser.add_argument("--output", type=Path, default=Path("results/generation_metrics"),
                        help="folder for results.json, results.md and per_clip.jsonl (overwritten)")
    add_debug_argument(parser)
    return parser.parse_args(argv)


def check_flags(args) -> None:
    if "clap_score" in args.metrics and not args.clap_path:
        raise UsageError("the CLAP score needs --clap_path (a CLAP folder such as laion/larger_clap_music); "
                         "or pass --metrics fad")
    if args.tagger and not args.clap_path:
        raise UsageError("--tagger clap needs --clap_path (a CLAP folder such as laion/larger_clap_music)")


def halves(n: int, seed: int) -> tuple[list[int], list[int]]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order[: n // 2], order[n // 2:]


def fad(a: np.ndarray, b: np.ndarray, min_clips: int) -> dict:
    """The FAD row of two embedding sets: the value, or n/a with why when a set is below `min_clips`."""
    row = {"fad": None, "fad_clips": [len(a), len(b)]}
    if min(len(a), len(b)) < min_clips:  # reported, with why, rather than a number dominated by its bias
        row["fad_why"] = f"fewer than {min_clips} clips in a set ({len(a)} / {len(b)}): too few for FAD"
    else:
        row["fad"] = gm.frechet_distance(a, b)
    return row


def fad_rows(embedder, sets: dict, references, args, failed) -> tuple[dict, dict]:
    """FAD of each set of generated clips (`sets`: {row: items}) against the references and of one reference
    half against the other, and the embeddings by path."""
    refs, failed_ref = gm.embed_files(embedder, references, args.batch_size, "references")
    failed.update(failed_ref)
    if len(refs) < 2:
        raise UsageError(f"FAD needs at least 2 readable reference clips, got {len(refs)}")
    ref_rows = np.stack(list(refs.values()))
    rows, embedded = {}, dict(refs)
    for name, items in sets.items():
        generated, failed_gen = gm.embed_files(embedder, [it["output"] for it in items], args.batch_size, name)
        failed.update(failed_gen)
        embedded.update(generated)
        if len(generated) < 2:
            raise UsageError(f"FAD needs at least 2 readable generated clips ({name}), got {len(generated)}")
        rows[name] = fad(np.stack(list(generated.values())), ref_rows, args.min_fad_clips)
    first, second = halves(len(ref_rows), args.seed)
    rows["reference_halves"] = fad(ref_rows[first], ref_rows[second], args.min_fad_clips)
    return rows, embedded


def pair_rows(clap, items, args, failed, known: dict) -> tuple[dict, dict, list[dict]]:
    """CLAP score and KL for the model and the shuffled control, and each clip's scores; `known`: CLAP
    audio embeddings already made (by FAD's clap embedder)."""
    model, processor = clap
    todo = [p for p in dict.fromkeys([it["output"] for it in items]
                                     + [it["reference"] for it in items if args.tagger and it["reference"]])
            if p not in failed and p not in known]
    audio, unreadable = gm.embed_files(gm.ClapEmbedder(model, processor), todo, args.batch_size, "CLAP")
    audio.update(known)
    failed.update(unreadable)
    rows, control, per_clip = {}, {}, {it["id"]: {"id": it["id"], "output": str(it["output"])} for it in items}
    if "clap_score" in args.metrics:
        scored = [it for it in items if it["output"] in audio]
        texts = gm.clap_text_embeddings(model, processor, [it["prompt"] for it in scored])
        clips = np.stack([audio[it["output"]] for it in scored])
        row, shuffled = score_pairs("clap_score", gm.paired_cosines, texts, clips, scored, per_clip, args.seed)
        rows.update(row)
        control.update(shuffled)
    if args.tagger:
        scored = [it for it in items if it["output"] in audio and it["reference"] in audio]
        tags = gm.clap_text_embeddings(model, processor, args.tags)
        p_ref = gm.clap_tag_probabilities(model, np.stack([audio[it["reference"]] for it in scored]), tags)
        p_gen = gm.clap_tag_probabilities(model, np.stack([audio[it["output"]] for it in scored]), tags)
        row, shuffled = score_pairs("kl", gm.kl_divergence, p_ref, p_gen, scored, per_clip, args.seed)
        rows.update(row)
        control.update(shuffled)
    return rows, control, list(per_clip.values())


def score_pairs(metric, score, side, clips, scored, per_clip, seed) -> tuple[dict, dict]:
    """The model's row: `metric` of each (side[i], clips[i]) pair; the control's: of each
    (side[order[i]], clips[i]), `order` a seeded derangement. Each clip's values go into `per_clip`."""
    if not scored:
        raise UsageError(f"no readable pair to compute {metric} on")
    result = score(side, clips)
    for it, value in zip(scored, result.per_pair, strict=True):
        per_clip[it["id"]][metric] = float(value)
    row = {metric: result.mean, f"{metric}_pairs": len(scored)}
    if len(scored) < 2:  # reported, with why, rather than left out
        return row, {metric: None, f"{metric}_pairs": len(scored), f"{metric}_why": "needs at least 2 pairs"}
    order = derangement(len(scored), seed)
    shuffled = score(side[order], clips)
    for it, j, value in zip(scored, order, shuffled.per_pair, strict=True):
        per_clip[it["id"]][f"{metric}_shuffled"] = float(value)
        per_clip[it["id"]][f"{metric}_shuffled_with"] = scored[j]["id"]
    return row, {metric: shuffled.mean, f"{metric}_pairs": len(scored)}


def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def markdown(results: dict) -> str:
    settings, counts = results["settings"], results["counts"]
    lines = ["# Generated music", "",
             f"- generated: `{settings['generated']}`: {counts['generated_listed']} clips listed, "
             f"{counts['generation_errors']} requests without music, {counts['unreadable_generated']} unreadable",
             f"- references: `{settings['reference']}`: {counts['references_listed']} clips, "
             f"{counts['unreadable_references']} unreadable",
             f"- FAD embeddings: {settings['embedder'] or 'FAD not computed'}; CLAP: `{settings['clap_path']}`; "
             f"tagger: {settings['tagger']}",
             f"- seed {settings['seed']}; versions: " + ", ".join(f"{k} {v}" for k, v in settings["versions"].items()),
             "", "| row | FAD | clips (generated / reference) | CLAP score | pairs | KL | pairs |",
             "|---|---|---|---|---|---|---|"]
    for name in (n for n in ROWS if n in results):
        row = results[name]
        clips = " / ".join(map(str, row["fad_clips"])) if "fad_clips" in row else ""
        lines.append(f"| {name} | {fmt(row.get('fad'))} | {clips} | {fmt(row.get('clap_score'))} | "
                     f"{row.get('clap_score_pairs', '')} | {fmt(row.get('kl'))} | {row.get('kl_pairs', '')} |")
    missing = [f"- {name} {key.removesuffix('_why')}: n/a, {why}" for name in ROWS if name in results
               for key, why in results[name].items() if key.endswith("_why")]
    return "\n".join([*lines, "", *missing]).rstrip("\n") + "\n\n" + NOTE


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_sets(args, generated: Path | None = None) -> tuple[list[dict], dict, list[Path]]:
    """The generated records (of --generated, or of `generated`), the {id: error} of requests without music,
    and the reference files, each checked against what the asked metrics need."""
    generated = generated or args.generated
    for flag, path in (("--generated", generated), ("--reference", args.reference)):
        if path is not None and not path.exists():
            raise UsageError(f"{flag} {path}: no such file or folder")
    items, errors = read_generated(generated)
    if not items:
        raise UsageError(f"{generated}: no generated clips in it"
                         + (f" ({len(errors)} requests without music)" if errors else ""))
    if "clap_score" in args.metrics and any(not it["prompt"] for it in items):
        raise UsageError(f"the CLAP score needs each clip's request text, which {generated} lacks: pass the "
                         "generated.jsonl of generate_mumu.py, or --metrics fad")
    if args.tagger and not any(it["reference"] for it in items):
        raise UsageError(f"KL needs the requests' references, and no record of {generated} names one")
    references = (read_references(args.reference) if args.reference
                  else list(dict.fromkeys(it["reference"] for it in items if it["reference"])))
    if "fad" in args.metrics and not references:
        raise UsageError(f"--reference {args.reference}: no audio files in it" if args.reference else
                         "no reference audio: pass --reference, or generate from requests that name a 'reference'")
    return items, errors, references


def counts_of(items, errors, references, failed) -> dict:
    generated, reference = {it["output"] for it in items}, set(references)
    return {"generated_listed": len(items), "generation_errors": len(errors),
            "unreadable_generated": len(generated & set(failed)), "references_listed": len(references),
            "unreadable_references": len(reference & set(failed)), "errors": errors,
            "unreadable": {str(path): why for path, why in failed.items()}}


def settings_of(args) -> dict:
    # generate_mumu.py's settings and counts, beside its generated.jsonl
    meta = (args.generated if args.generated.is_dir() else args.generated.parent) / "generated.meta.json"
    return {"generated": str(args.generated),
            "reference": str(args.reference) if args.reference else "named by records",
            "metrics": args.metrics, "embedder": args.embedder if "fad" in args.metrics else None,
            "mert_path": args.mert_path, "clap_path": args.clap_path, "tagger": args.tagger,
            "shuffled": str(args.shuffled) if args.shuffled else None, "min_fad_clips": args.min_fad_clips,
            "tags": args.tags if args.tagger else None, "seed": args.seed, "device": args.device,
            "generation": json.loads(meta.read_text()) if meta.is_file() else None,
            "versions": {"python": platform.python_version(), **{lib: version(lib) for lib in LIBRARIES}}}


def main(argv=None):
    args = parse_args(argv)
    check_flags(args)
    items, errors, references = read_sets(args)
    sets = {"model": items}
    if args.shuffled:
        sets["shuffled_requests"] = read_sets(args, args.shuffled)[0]
    transformers.utils.logging.disable_progress_bar()  # CLAP's loading bar
    # CLAP's feature extractor crops clips longer than its 10 s at random, with numpy's global RNG.
    np.random.seed(args.seed)
    clap = gm.load_clap(args.clap_path, args.device) if args.clap_path else None
    failed: dict[Path, str] = {}
    results, known, per_clip = {name: {} for name in ROWS}, {}, []
    if "fad" in args.metrics:
        embedder = gm.make_embedder(args.embedder, args.mert_path, clap, args.device)
        rows, embedded = fad_rows(embedder, sets, references, args, failed)
        for name, row in rows.items():
            results[name].update(row)
        known = embedded if args.embedder == "clap" else {}
    if "clap_score" in args.metrics or args.tagger:
        rows, control, per_clip = pair_rows(clap, items, args, failed, known)
        results["model"].update(rows)
        results["shuffled_control"].update(control)
        if args.shuffled:
            results["shuffled_requests"].update(pair_rows(clap, sets["shuffled_requests"], args, failed, known)[0])
    if not args.shuffled:
        del results["shuffled_requests"]
    results["counts"] = counts_of(items, errors, references, failed)
    results["settings"] = settings_of(args)
    args.output.mkdir(parents=True, exist_ok=True)
    write_text(args.output / "results.json", json.dumps(results, indent=1, ensure_ascii=False))
    write_text(args.output / "per_clip.jsonl", "".join(map(json_line, per_clip)))
    table = markdown(results)
    write_text(args.output / "results.md", table)
    print(table)


if __name__ == "__main__":
    run_main(main)
