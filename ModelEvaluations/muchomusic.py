"""MuChoMusic: does the model hear the music? Its 1,187 multiple-choice questions, answered by MU-LLaMA or
MuMu-LLaMA and by four controls, scored in four modes, with bootstrap confidence intervals.

    python ModelEvaluations/muchomusic.py --model ckpts/checkpoint.pth --llama_dir ckpts/LLaMA \\
        --mert_path ckpts/MERT-v1-330M --data_root muchomusic/data --output_dir results/muchomusic

--data_root is the benchmark repository's data folder: muchomusic.csv, musiccaps/musiccaps-public.csv,
musiccaps/audio/[ytid]-[start-end].wav, sdd/song_describer.csv and sdd/audio/NN/ID.2min.mp3 (each path has its
own flag). Every question is shown as the benchmark shows it (its default one worked example first,
--in_context none for none), the answers in an order drawn from --order_seed, inside the model's own prompt
template. Conditions (--conditions): the model with each question's audio, then silence, white noise, another
question's track, and the base LLM with no audio. Modes: paper (the benchmark's own output-to-letter rule,
quirks included: its numbers compare with the published table), strict (a rule a capital inside a word cannot
fool), likelihood (the option with the highest log-probability as the answer, summed and per token: nothing to
parse, nothing unanswered). A question whose audio is missing or unreadable is left out of every table,
counted and listed.

Writes OUTPUT_DIR/CONDITION.json (the benchmark's evaluate.py input format, with outputs and log-probabilities;
a killed run resumes), report.json (every table, every group, the missing questions) and report.md.
--score_only rescores what OUTPUT_DIR holds.
"""

import argparse
import csv
import gc
import json
import sys
from pathlib import Path

from llama.base_llm import load_base
from llama.cli import UsageError, load_model, model_dtype, read_model, resolve_model_paths, run_main
from llama.evaluation.muchomusic import IN_CONTEXT, audio_paths, read_questions
from llama.evaluation.muchomusic_run import (
    CONDITION_MEANINGS,
    CONDITIONS,
    MODES,
    NAMES,
    markdown_report,
    pending,
    prepare,
    read_records,
    run_condition,
    score,
)
from llama.flags import BATCH_DTYPE_NOTE, HelpFormatter, add_model_arguments, positive_int
from llama.records import atomic_path


def names(text: str, known, flag: str) -> list[str]:
    chosen = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown or not chosen:
        raise UsageError(f"{flag}: {', '.join(unknown) or 'nothing'} not among {', '.join(known)}")
    return chosen


def base_model(args, known):
    """The text-only control: the base LLM in --llama_dir, in the model's (template, dtype) `known`, or read from
    the checkpoint and the flags when the model was not loaded in this run."""
    if known is None:
        template, dtype = read_model(args.model).config.prompt_template, model_dtype(args)
    else:
        template, dtype = known
    return load_base(args.llama_dir, template, args.llama_type, args.device, dtype)


# Flags that change an answer: a resumed run must be given the same ones.
PINNED = ("model", "llama_dir", "llama_type", "mert_path", "base_weights", "dtype", "quantize", "audio_mode",
          "max_gen_len", "temperature", "top_p", "seed", "in_context", "order_seed")


def check_settings(path: Path, args) -> dict:
    """The run's settings: the pinned flags, and once a model is loaded its template and dtype; a resumed run
    given other pinned flags is refused."""
    flags = {k: getattr(args, k) for k in PINNED}
    before = json.loads(path.read_text()) if path.exists() else None
    if before is None:
        return {"flags": flags}
    changed = [k for k in PINNED if before["flags"].get(k) != flags[k]]
    if changed:
        was = ", ".join(f"--{k} {before['flags'].get(k)}" for k in changed)
        raise UsageError(f"{path.parent} holds a run made with {was}: give the same flags or another --output_dir")
    return before


def write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    data = parser.add_argument_group("benchmark files (default: the benchmark repository's layout under --data_root)")
    data.add_argument("--data_root", default="data", help="the folder holding muchomusic.csv, musiccaps/ and sdd/")
    data.add_argument("--questions", help="muchomusic.csv (default DATA_ROOT/muchomusic.csv)")
    data.add_argument("--musiccaps_csv", help="default DATA_ROOT/musiccaps/musiccaps-public.csv")
    data.add_argument("--musiccaps_audio", help="default DATA_ROOT/musiccaps/audio")
    data.add_argument("--sdd_csv", help="default DATA_ROOT/sdd/song_describer.csv")
    data.add_argument("--sdd_audio", help="default DATA_ROOT/sdd/audio")
    run = parser.add_argument_group("evaluation")
    run.add_argument("--output_dir", default="results/muchomusic", help="outputs, resumed where they exist")
    run.add_argument("--conditions", default=",".join(CONDITIONS), help="comma-separated, of " + ", ".join(CONDITIONS))
    run.add_argument("--modes", default=",".join(MODES), help="comma-separated, of " + ", ".join(MODES) +
                     " (paper and strict need generated answers, the likelihood modes the options' log-probabilities)")
    run.add_argument("--in_context", choices=sorted(IN_CONTEXT), default="default",
                     help="default: the benchmark's default configuration's one worked example before every question")
    run.add_argument("--order_seed", type=int, default=0, help="seed of the answer orders (and noise, shuffling)")
    run.add_argument("--batch_size", type=positive_int, default=8, help="questions run at once" + BATCH_DTYPE_NOTE)
    run.add_argument("--queue_size", type=positive_int, help="questions whose audio is read at a time "
                     "(default 8 x --batch_size)")
    run.add_argument("--limit", type=positive_int, help="only the first N questions of the CSV")
    run.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples of the questions")
    run.add_argument("--score_only", action="store_true", help="score what --output_dir holds; run no model")
    add_model_arguments(parser, max_gen_len=256, top_p=1.0)
    args = parser.parse_args(argv)

    conditions = names(args.conditions, CONDITIONS, "--conditions")
    modes = names(args.modes, MODES, "--modes")
    root = Path(args.data_root)
    try:
        questions = read_questions(args.questions or root / "muchomusic.csv")[:args.limit]
        paths = audio_paths(questions, args.musiccaps_csv or root / "musiccaps" / "musiccaps-public.csv",
                            args.musiccaps_audio or root / "musiccaps" / "audio", args.sdd_csv or
                            root / "sdd" / "song_describer.csv", args.sdd_audio or root / "sdd" / "audio")
    except (ValueError, csv.Error) as e:  # a benchmark file that is not as published
        raise UsageError(str(e)) from None
    items, missing = prepare(questions, paths, args.order_seed, IN_CONTEXT[args.in_context])
    print(f"{len(questions)} questions, {len(missing)} without an audio file (left out, listed in report.json)",
          file=sys.stderr)
    if not items:
        raise UsageError(f"no question of {len(questions)} has its audio under {root}: check --data_root")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    resolve_model_paths(args)
    settings = check_settings(out / "settings.json", args)
    generate = any(m in ("paper", "strict") for m in modes)
    likelihood = any(m.startswith("likelihood") for m in modes)
    kept = out / "unreadable.json"  # tracks that failed while decoding: asked again by no condition
    unreadable = {int(k): v for k, v in json.loads(kept.read_text()).items()} if kept.exists() else {}
    pipeline = None
    for condition in [] if args.score_only else conditions:
        done = read_records(out / f"{condition}.json", items)
        todo = pending(items, done, generate, likelihood, unreadable)
        if not todo:
            print(f"{NAMES[condition]}: every question answered in {out / condition}.json", file=sys.stderr)
            continue
        if condition == "text_only":
            known = None if pipeline is None else (pipeline.template, pipeline.dtype)
            pipeline = None
            gc.collect()  # the model leaves memory before the base LLM comes
            pipeline = base_model(args, known)
        elif pipeline is None:
            pipeline = load_model(args, mumu=True)
        settings.setdefault("prompt_template", pipeline.template)
        settings.setdefault("dtype", str(pipeline.dtype).removeprefix("torch."))
        write(out / "settings.json", json.dumps(settings, indent=1))
        try:
            run_condition(pipeline, todo, items, condition, out / f"{condition}.json", done, generate=generate,
                          likelihood=likelihood, order_seed=args.order_seed, batch_size=args.batch_size,
                          queue_size=args.queue_size or 8 * args.batch_size, unreadable=unreadable,
                          max_new_tokens=args.max_gen_len, temperature=args.temperature, top_p=args.top_p,
                          seed=args.seed)
        except ValueError as e:  # a question longer than the model's context: the queues written so far stay
            raise UsageError(f"{NAMES[condition]}: {e}") from None
        write(kept, json.dumps(unreadable, indent=1))
    results = {c: read_records(out / f"{c}.json", items) for c in CONDITIONS  # tables in CONDITIONS' order
               if c in conditions and (out / f"{c}.json").exists()}
    if not results:
        raise UsageError(f"{out} holds no answers of {', '.join(conditions)}: run without --score_only first")
    report = score(items, results, modes, {**missing, **unreadable}, len(questions), args.resamples, args.order_seed)
    report["settings"] = settings
    report["conditions"] = {c: CONDITION_MEANINGS[c] for c in results}
    write(out / "report.json", json.dumps(report, indent=1, ensure_ascii=False))
    shown = {"model": settings["flags"]["model"], "prompt_template": settings.get("prompt_template"),
             "in_context": args.in_context, "order_seed": args.order_seed, "dtype": settings.get("dtype"),
             "max_gen_len": args.max_gen_len}
    markdown = markdown_report(report, shown)
    write(out / "report.md", markdown)
    print(markdown)
    if "model" not in results:
        print("no 'model' condition: the tables show the controls alone", file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
