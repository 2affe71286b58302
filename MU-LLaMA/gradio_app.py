"""Web demo: ask MU-LLaMA about a music file in a chat; answers appear token by token.

    python MU-LLaMA/gradio_app.py --model ckpts/checkpoint.pth --llama_dir ckpts/LLaMA \
        --mert_path ckpts/MERT-v1-330M                # then open http://127.0.0.1:7860

The model flags are inference.py's (none of --model/--llama_dir/--mert_path: the demo model). The
sampling flags set the sliders' starting values, by default the original demo's. Unlike the
original demo it serves on 127.0.0.1 unless --host says otherwise, streams real tokens instead of
re-splitting a finished answer, can feed earlier turns to the model (off by default), and answers
an unusable upload with a message in the chat.
"""

import argparse
import functools
import importlib.util
from pathlib import Path

import gradio as gr
import soundfile

from llama import AudioError
from llama.cli import add_model_arguments, load_model, positive_int, run_main

SAX = Path(importlib.util.find_spec("gradio").origin).parent / "media_assets" / "audio" / "sax.wav"
EXAMPLES = Path(__file__).resolve().parents[1] / "demo" / "examples"
QUESTIONS = ["What instrument is playing?", "Is the tempo slow or fast?"]
HISTORY_NOTE = ("The released model was trained on single questions: it has never seen a conversation, so "
                "answering each question on its own is the faithful setting. When this is on, each earlier "
                "question and answer about this clip goes before your question as two lines, "
                "'Earlier question: ...' and 'Earlier answer: ...'.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # The original demo's slider defaults.
    add_model_arguments(parser, max_gen_len=1024, temperature=0.25, top_p=1.0)
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="0.0.0.0 serves other machines too")
    server.add_argument("--port", type=int, default=7860)
    server.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    server.add_argument("--concurrency", type=int, default=1,
                        help="requests answered at once (each holds its own KV cache); the rest wait in the queue")
    server.add_argument("--max_queue", type=int, default=32, help="requests waiting beyond this are turned away")
    server.add_argument("--max_audio_seconds", type=float, default=600.0,
                        help="longer uploads are refused (the whole clip is encoded, 60 s window by 60 s window)")
    server.add_argument("--max_question_tokens", type=positive_int, default=256,
                        help="longer questions are refused at once, before they hold the queue")
    server.add_argument("--max_answer_seconds", type=float, default=120.0,
                        help="an answer still growing after this long is stopped, and the queue moves on")
    return parser


def read_clip(model, path: str | None, max_seconds: float):
    """The uploaded clip at the encoder's rate and the warnings to show beside its answer (silent, too
    short, a cut-short WAV), or an AudioError that says what is wrong with it."""
    if not path:
        raise AudioError("no music yet: upload a file or record one, then ask")
    try:
        seconds = soundfile.info(path).duration
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        seconds = 0.0  # unreadable: load_clip raises the AudioError that says why
    if seconds > max_seconds:
        raise AudioError(f"the clip is {seconds:.0f} s long; this demo takes up to {max_seconds:.0f} s")
    return model.load_clip(path)


def with_history(question: str, turns: list) -> str:
    """The question with the earlier (question, answer) turns about the same clip written before it."""
    lines = [f"Earlier question: {q}\nEarlier answer: {a}" for q, a in turns]
    return "\n".join([*lines, question])


def ask(model, max_audio_seconds, audio, question, chat, turns, feed_history, max_len, temperature, top_p, seed,
        max_question_tokens: int = 256, max_answer_seconds: float = 120.0):
    """The chat handler: yields (chat, turns, question box) as the answer grows. `turns` holds the
    (question, answer) pairs the model gave for this clip; an error message never becomes one."""
    question = question.strip()
    if not question:
        yield chat + [{"role": "assistant", "content": "Type a question about the music."}], turns, ""
        return
    length = len(model.tokenizer.encode(question, bos=False))
    if length > max_question_tokens:  # refused before it holds the queue's worker
        shown = question if len(question) <= 200 else question[:200] + " ..."
        refusal = (f"Your question is {length} tokens long; this demo takes up to {max_question_tokens}. "
                   "Ask a shorter one.")
        yield chat + [{"role": "user", "content": shown}, {"role": "assistant", "content": refusal}], turns, ""
        return
    chat = chat + [{"role": "user", "content": question}]
    try:
        clip, warnings = read_clip(model, audio, max_audio_seconds)
    except AudioError as e:
        # The upload's path in the server's cache means nothing to the user; its file name does.
        message = str(e).replace(audio, Path(audio).name) if audio else str(e)
        yield chat + [{"role": "assistant", "content": f"Cannot use this audio: {message}"}], turns, ""
        return
    if warnings:  # shown, and the model is still asked
        chat = chat + [{"role": "assistant", "content": "Note: " + "; ".join(warnings)}]
    prompt = with_history(question, turns) if feed_history else question
    try:
        for answer in model.stream(clip, prompt, max_answer_seconds, max_new_tokens=int(max_len),
                                    temperature=temperature, top_p=top_p, seed=int(seed)):
            yield chat + [{"role": "assistant", "content": answer}], turns, ""
    except ValueError as e:  # e.g. a prompt plus max length beyond the model's context
        yield chat + [{"role": "assistant", "content": f"Cannot answer: {e}"}], turns, ""
        return
    yield chat + [{"role": "assistant", "content": answer}], turns + [(question, answer)], ""


def new_conversation():
    return [], []


def example_rows() -> tuple[list[list[str]], list[str]]:
    """gradio's saxophone recording, and the synthetic clips that ship with the demo model (named
    family-tempo-mode: the demo model's kind of music). Returns (rows, labels)."""
    rows, labels = [[str(SAX), "Describe the music in detail"]], ["saxophone (ships with gradio)"]
    for path, question in zip(sorted(EXAMPLES.glob("*.wav")), QUESTIONS, strict=False):
        rows.append([str(path), question])
        labels.append("synthetic: " + path.stem.replace("-", " "))
    return rows, labels


def build_app(model, args) -> gr.Blocks:
    """The demo's page and queue around a loaded model; `args` as parsed by build_parser()."""
    rows, labels = example_rows()
    with gr.Blocks(title="MU-LLaMA") as demo:
        gr.Markdown("# MU-LLaMA\nUpload or record music, then ask about it. A new clip starts a new conversation.")
        turns = gr.State([])
        with gr.Row():
            with gr.Column(scale=1):
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Music")
                feed_history = gr.Checkbox(False, label="Feed earlier turns to the model", info=HISTORY_NOTE)
                with gr.Accordion("Sampling", open=False):
                    context = model.model.llama.args.max_seq_len  # question + answer must fit in it
                    max_len = gr.Slider(1, context, value=min(args.max_gen_len, context), step=1,
                                        label="Max length (tokens)")
                    temperature = gr.Slider(0, max(1.0, args.temperature), value=args.temperature,
                                            label="Temperature (0 = greedy)")
                    top_p = gr.Slider(0, 1, value=args.top_p, label="Top-p")
                    seed = gr.Number(args.seed, precision=0, label="Seed")
            with gr.Column(scale=2):
                chat = gr.Chatbot(label="Chat")
                question = gr.Textbox(label="Question", placeholder="Describe the music")
                send = gr.Button("Ask", variant="primary")
        gr.Examples(rows, inputs=[audio, question], example_labels=labels, cache_examples=False)
        handler = functools.partial(ask, model, args.max_audio_seconds, max_question_tokens=args.max_question_tokens,
                                    max_answer_seconds=args.max_answer_seconds)
        gr.on([question.submit, send.click], handler,
              inputs=[audio, question, chat, turns, feed_history, max_len, temperature, top_p, seed],
              outputs=[chat, turns, question], api_name="ask")
        for event in (audio.change, chat.clear):  # the chat's bin icon
            event(new_conversation, outputs=[chat, turns], queue=False, api_visibility="private")
    return demo.queue(default_concurrency_limit=args.concurrency, max_size=args.max_queue)


def main(argv=None):
    args = build_parser().parse_args(argv)
    model = load_model(args)
    build_app(model, args).launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    run_main(main)
