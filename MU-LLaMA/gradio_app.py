"""Web demo: ask MU-LLaMA about a music file in a chat; answers appear token by token. With
--generate, or a MuMu-LLaMA checkpoint or any MuMu-LLaMA flag, MuMu-LLaMA's page: ask for music
(optionally about an uploaded clip or image) and play it in the chat.

    python MU-LLaMA/gradio_app.py --model ckpts/checkpoint.pth --llama_dir ckpts/LLaMA \
        --mert_path ckpts/MERT-v1-330M                # then open http://127.0.0.1:7860
    python MU-LLaMA/gradio_app.py --generate          # the demo MuMu-LLaMA

The model flags are inference.py's (none of --model/--llama_dir/--mert_path: the demo model; for
--generate, none of those nor an encoder or decoder flag: the demo MuMu-LLaMA). The
sampling flags set the sliders' starting values, by default the original demo's. Unlike the
original demo it serves on 127.0.0.1 unless --host says otherwise, streams real tokens instead of
re-splitting a finished answer, can feed earlier turns to the model (off by default), and answers
an unusable upload with a message in the chat.
"""

import argparse
import functools
import importlib.util
import tempfile
from pathlib import Path

import gradio as gr
import soundfile

from llama import AudioError, MediaError, Request
from llama.cli import load_model, load_mumu_model, run_main, wants_mumu
from llama.flags import HelpFormatter, add_model_arguments, add_mumu_model_arguments, positive_int

SAX = Path(importlib.util.find_spec("gradio").origin).parent / "media_assets" / "audio" / "sax.wav"
EXAMPLES = Path(__file__).resolve().parents[1] / "demo" / "examples"
QUESTIONS = ["What instrument is playing?", "Is the tempo slow or fast?"]
HISTORY_NOTE = ("The released model was trained on single questions: it has never seen a conversation, so "
                "answering each question on its own is the faithful setting. When this is on, each earlier "
                "question and answer about this clip goes before your question as two lines, "
                "'Earlier question: ...' and 'Earlier answer: ...'.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    # The original demo's length and top-p; the project's one default temperature (greedy). A length beyond
    # what the model's context leaves after the prompt is cut to that room (Pipeline).
    add_model_arguments(parser, max_gen_len=1024, top_p=1.0)
    add_mumu_model_arguments(parser)
    parser.add_argument("--generate", action="store_true",
                        help="serve MuMu-LLaMA's music generation page (implied by a MuMu-LLaMA checkpoint or any "
                        "MuMu-LLaMA flag); alone: the demo MuMu-LLaMA")
    # load_mumu_model reads inference.py's request flags; here the requests come from the page instead.
    parser.set_defaults(audio_file=None, image_file=None, video_file=None)
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="0.0.0.0 serves other machines too")
    server.add_argument("--port", type=int, default=7860, help="the port the page is served on")
    server.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    server.add_argument("--concurrency", type=int, default=1,
                        help="requests answered at once (each holds its own KV cache); the rest wait in the queue")
    server.add_argument("--max_queue", type=int, default=32, help="requests waiting beyond this are turned away")
    server.add_argument("--max_audio_seconds", type=float, default=600.0,
                        help="longer uploads are refused (the whole clip is encoded, 60 s window by 60 s window)")
    server.add_argument("--max_question_tokens", type=positive_int, default=256,
                        help="longer questions (requests, on the --generate page) are refused at once, before they "
                        "hold the queue")
    server.add_argument("--max_answer_seconds", type=float, default=120.0,
                        help="an answer still growing after this long is stopped, and the queue moves on (MU-LLaMA's "
                        "page only: MuMu-LLaMA's answers come whole)")
    return parser


def say(text: str) -> dict:
    return {"role": "assistant", "content": text}


def refusal(tokenizer, text: str, max_tokens: int, noun: str, hint: str) -> list | None:
    """The chat messages that turn away an empty or over-long request (`noun`: what the page calls it;
    `hint`: what to type), or None when it can be served."""
    if not text:
        return [say(hint)]
    length = len(tokenizer.encode(text, bos=False))
    if length <= max_tokens:
        return None
    shown = text if len(text) <= 200 else text[:200] + " ..."
    return [{"role": "user", "content": shown},
            say(f"Your {noun} is {length} tokens long; this demo takes up to {max_tokens}. Ask a shorter one.")]


def cannot_use(what: str, error: Exception, path: str | None) -> dict:
    # The upload's path in the server's cache means nothing to the user; its file name does.
    message = str(error).replace(path, Path(path).name) if path else str(error)
    return say(f"Cannot use {what}: {message}")


def check_clip_length(path: str, max_seconds: float) -> None:
    """Refuse a clip longer than `max_seconds` before it is decoded (the whole clip would be encoded)."""
    try:
        seconds = soundfile.info(path).duration
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        return  # unreadable: the loader raises the AudioError that says why
    if seconds > max_seconds:
        raise AudioError(f"the clip is {seconds:.0f} s long; this demo takes up to {max_seconds:.0f} s")


def read_clip(model, path: str | None, max_seconds: float):
    """The uploaded clip at the encoder's rate and the warnings to show beside its answer (silent, too
    short, a cut-short WAV), or an AudioError that says what is wrong with it."""
    if not path:
        raise AudioError("no music yet: upload a file or record one, then ask")
    check_clip_length(path, max_seconds)
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
    refused = refusal(model.tokenizer, question, max_question_tokens, "question", "Type a question about the music.")
    if refused:  # before it holds the queue's worker
        yield chat + refused, turns, ""
        return
    chat = chat + [{"role": "user", "content": question}]
    try:
        clip, warnings = read_clip(model, audio, max_audio_seconds)
    except AudioError as e:
        yield chat + [cannot_use("this audio", e, audio)], turns, ""
        return
    if warnings:  # shown, and the model is still asked
        chat = chat + [say("Note: " + "; ".join(warnings))]
    prompt = with_history(question, turns) if feed_history else question
    try:
        for answer in model.stream(clip, prompt, max_answer_seconds, max_new_tokens=int(max_len),
                                    temperature=temperature, top_p=top_p, seed=int(seed)):
            yield chat + [say(answer)], turns, ""
    except ValueError as e:  # e.g. a prompt plus max length beyond the model's context
        yield chat + [say(f"Cannot answer: {e}")], turns, ""
        return
    yield chat + [say(answer)], turns + [(question, answer)], ""


def generate(pipeline, args, music_dir, audio, image, prompt, chat, seconds, max_len, temperature, top_p, seed):
    """MuMu-LLaMA's chat handler: yields (chat, prompt box) as the request, the reply's text and then the
    music it asks for (a WAV in `music_dir`, played in the chat) come in. Every request stands alone:
    the model is not fed earlier turns."""
    prompt = prompt.strip()
    refused = refusal(pipeline.tokenizer, prompt, args.max_question_tokens, "request",
                      "Type a request, e.g. 'Generate a music', or upload a clip and ask 'Make it faster'.")
    if refused:  # before it holds the queue's worker
        yield chat + refused, ""
        return
    chat = chat + [{"role": "user", "content": prompt}]
    decoder = pipeline.decoder
    if decoder is not None and seconds > decoder.max_seconds:  # the slider stops there; an API call may not
        yield chat + [say(f"This music decoder writes at most {decoder.max_seconds:g} s; ask for less.")], ""
        return
    clip = picture = None
    try:
        if audio:
            check_clip_length(audio, args.max_audio_seconds)
            clip = pipeline.read("music", audio)
    except AudioError as e:
        yield chat + [cannot_use("this audio", e, audio)], ""
        return
    try:
        if image:
            picture = pipeline.read("image", image)
    except MediaError as e:
        yield chat + [cannot_use("this image", e, image)], ""
        return
    yield chat, ""  # the request shows while the model answers
    try:
        reply = pipeline.respond([Request(prompt, audio=clip, image=picture)], max_new_tokens=int(max_len),
                                 temperature=temperature, top_p=top_p, seed=int(seed),
                                 complete_audio=args.complete_audio_tokens)[0]
    except ValueError as e:  # e.g. a prompt too long for the model's context
        yield chat + [say(f"Cannot answer: {e}")], ""
        return
    chat = chat + [say(reply.text)]
    if reply.music_note:  # no music, or music from a completed [AUD] set: said, never silent
        chat = chat + [say(f"({reply.music_note[0].upper()}{reply.music_note[1:]}.)")]
    if reply.conditioning is None:
        yield chat, ""
        return
    if decoder is None:
        yield chat + [say("The answer asks for music, but no music decoder is loaded "
                          "(serve with --music_decoder_path to hear it).")], ""
        return
    yield chat, ""  # the text shows while the decoder works
    try:
        wave = pipeline.music(reply, float(seconds), conditioning=args.music_conditioning,
                              temperature=args.music_temperature, seed=int(seed))
    except (ValueError, RuntimeError) as e:  # the decoder's refusals are ValueErrors; out of GPU memory is not
        yield chat + [say(f"Cannot make the music: {e}")], ""
        return
    with tempfile.NamedTemporaryFile(dir=music_dir, prefix="music-", suffix=".wav", delete=False) as f:
        soundfile.write(f, wave, decoder.sample_rate, format="WAV")
    yield chat + [{"role": "assistant", "content": {"path": f.name, "mime_type": "audio/wav"}}], ""


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


def sampling_controls(context: int, args):
    """The sampling accordion, starting at the flags' values: max length (prompt and answer must fit
    in `context`), temperature, top-p and seed."""
    with gr.Accordion("Sampling", open=False):
        max_len = gr.Slider(1, context, value=min(args.max_gen_len, context), step=1,
                            label="Max length (tokens; cut to what the context leaves after the prompt)")
        temperature = gr.Slider(0, max(1.0, args.temperature), value=args.temperature,
                                label="Temperature (0 = greedy)")
        top_p = gr.Slider(0, 1, value=args.top_p, label="Top-p")
        seed = gr.Number(args.seed, precision=0, label="Seed")
    return max_len, temperature, top_p, seed


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
                max_len, temperature, top_p, seed = sampling_controls(model.max_seq_len, args)
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


def build_mumu_app(pipeline, args, music_dir: str | None = None) -> gr.Blocks:
    """MuMu-LLaMA's page and queue: inputs for the encoders the model has, a music length when it has a
    decoder, and a chat that plays the music. Generated WAVs go to `music_dir` (default: a new temporary
    folder, from which gradio serves them)."""
    decoder = pipeline.decoder
    longest = decoder.max_seconds if decoder else 10.0
    with gr.Blocks(title="MuMu-LLaMA") as demo:
        gr.Markdown("# MuMu-LLaMA\nAsk for music ('Generate a music'), or upload a clip and ask for a change "
                    "('Make it faster'). Each request stands on its own.")
        with gr.Row():
            with gr.Column(scale=1):
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Music (the model hears it)",
                                 visible=pipeline.takes("music"), elem_id="music")
                # A file box, not gr.Image: gr.Image decodes the upload before the handler, so a broken
                # image would end in an error popup instead of a message in the chat.
                image = gr.File(file_types=["image"], label="Image (the model sees it)",
                                visible=pipeline.takes("image"), elem_id="image")
                seconds = gr.Slider(1, longest, value=min(10.0, longest), step=1, label="Music length (s)",
                                    visible=decoder is not None, elem_id="seconds")
                max_len, temperature, top_p, seed = sampling_controls(pipeline.max_seq_len, args)
            with gr.Column(scale=2):
                chat = gr.Chatbot(label="Chat", elem_id="chat")
                prompt = gr.Textbox(label="Request", placeholder="Generate a music", elem_id="prompt")
                send = gr.Button("Send", variant="primary")
        handler = functools.partial(generate, pipeline, args, music_dir or tempfile.mkdtemp(prefix="mumu-music-"))
        gr.on([prompt.submit, send.click], handler,
              inputs=[audio, image, prompt, chat, seconds, max_len, temperature, top_p, seed],
              outputs=[chat, prompt], api_name="generate")
    return demo.queue(default_concurrency_limit=args.concurrency, max_size=args.max_queue)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.generate or wants_mumu(args):
        demo = build_mumu_app(load_mumu_model(args), args)
    else:
        demo = build_app(load_model(args), args)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    run_main(main)
