"""The web demo's MuMu-LLaMA page (gradio_app.py --generate) with the tiny MuMu release, its model
rewired to answer every request with the eight [AUD] tokens (tiny_mumu.chained_mumu), and its tiny
MusicGen: through the chat handler, and in a real browser that plays the music in the chat.

The browser test saves a screenshot to test-artifacts/gradio_generation.png (git-ignored)."""

import importlib.util
import sys
import urllib.request
from io import BytesIO
from pathlib import Path

import pytest
import soundfile
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

import llama
from llama.decoders import MusicDecoderError
from llama.testing.releases import chained_mumu, write_tiny_mumu_release
from llama.testing.vision import write_image

from conftest import ROOT

sys.path.insert(0, str(ROOT / "MU-LLaMA"))
import gradio_app  # noqa: E402

GRADIO_AUDIO = Path(importlib.util.find_spec("gradio").origin).parent / "media_assets" / "audio"
CLIP = GRADIO_AUDIO / "cantina.wav"  # 3 s of real music
LONG_CLIP = GRADIO_AUDIO / "sax.wav"  # 16 s: over the 10 s limit given below
SCREENSHOT = ROOT / "test-artifacts" / "gradio_generation.png"
PLAYER_CLOCK = '#chat [data-testid="waveform-Audio"] .timestamp'
SAMPLING = [40, 0.0, 1.0, 0]  # max length, temperature (greedy: chained_mumu's chain), top-p, seed


@pytest.fixture(scope="module")
def args(tmp_path_factory, sentencepiece_model):
    release = write_tiny_mumu_release(tmp_path_factory.mktemp("mumu"), sentencepiece_model, build=chained_mumu)
    flags = ["--generate", "--max_audio_seconds", "10", "--max_gen_len", "40", "--temperature", "0",
             "--music_temperature", "0", "--dtype", "float32"]  # exact answers are asserted: float32, not auto
    for key in ("checkpoint", "llama_dir", "mert_path", "vit_path", "music_decoder_path"):
        flags += ["--model" if key == "checkpoint" else f"--{key}", str(release[key])]
    return gradio_app.build_parser().parse_args(flags)


@pytest.fixture(scope="module")
def pipeline(args):
    return gradio_app.load_mumu_model(args)


@pytest.fixture(scope="module")
def default_args(args):
    """The same model with every other flag at its default (a max length of 1024: this model's whole context)."""
    flags = ["--generate"]
    for key in ("model", "llama_dir", "mert_path", "vit_path", "music_decoder_path"):
        flags += [f"--{key}", str(getattr(args, key))]
    return gradio_app.build_parser().parse_args(flags)


def last(pipeline, args, tmp_path, prompt, audio=None, image=None, seconds=0.5):
    """The chat after the handler's last yield, for a request in a new chat."""
    steps = gradio_app.generate(pipeline, args, str(tmp_path), audio, image, prompt, [], seconds, *SAMPLING)
    return list(steps)[-1][0]


def test_music_request_plays_a_wav_of_the_asked_length(pipeline, args, tmp_path):
    chat = last(pipeline, args, tmp_path, "Generate a music", audio=str(CLIP), seconds=0.5)
    assert chat[0] == {"role": "user", "content": "Generate a music"}
    assert chat[1]["content"].endswith("[AUD7]")  # the model asked for music
    music = chat[2]["content"]
    assert music["mime_type"] == "audio/wav" and Path(music["path"]).parent == tmp_path
    wave, rate = soundfile.read(music["path"])
    assert rate == pipeline.decoder.sample_rate and abs(len(wave) / rate - 0.5) < 0.1


def test_unusable_requests_get_a_message_and_the_next_one_is_served(pipeline, args, tmp_path):
    png = tmp_path / "photo.wav"  # a picture under a sound's name
    write_image(png, format="PNG")
    text = tmp_path / "notes.png"
    text.write_text("not an image\n")
    refusals = [last(pipeline, args, tmp_path, "Generate a music", audio=str(png))[-1]["content"],
                last(pipeline, args, tmp_path, "Generate a music", image=str(text))[-1]["content"],
                last(pipeline, args, tmp_path, "  ")[-1]["content"],
                last(pipeline, args, tmp_path, "Generate a music", seconds=1000)[-1]["content"],
                last(pipeline, args, tmp_path, "Generate a music", audio=str(LONG_CLIP))[-1]["content"],
                last(pipeline, args, tmp_path, "Generate a music. " * 100)[-1]["content"]]
    assert refusals[0] == "Cannot use this audio: photo.wav is not audio: it is a PNG image"
    assert refusals[1].startswith("Cannot use this image: cannot read notes.png as an image")
    assert refusals[2].startswith("Type a request")
    assert refusals[3] == "This music decoder writes at most 40 s; ask for less."
    assert refusals[4] == "Cannot use this audio: the clip is 16 s long; this demo takes up to 10 s"
    assert refusals[5].startswith("Your request is ") and "this demo takes up to 256" in refusals[5]
    chat = last(pipeline, args, tmp_path, "Generate a music")
    assert chat[-1]["content"]["mime_type"] == "audio/wav"


def test_decoder_errors_and_a_missing_decoder_are_said_in_the_chat(pipeline, args, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise MusicDecoderError("the decoder broke")

    monkeypatch.setattr(pipeline, "music", broken)
    chat = last(pipeline, args, tmp_path, "Generate a music")
    assert chat[-1]["content"] == "Cannot make the music: the decoder broke"
    answers_only = llama.MuMuPipeline(pipeline.model, pipeline.tokenizer)  # no decoder
    chat = last(answers_only, args, tmp_path, "Generate a music")
    assert chat[-1]["content"].startswith("The answer asks for music, but no music decoder is loaded")


def test_browser_upload_ask_and_play_the_music(pipeline, args, browser, tmp_path):
    demo = gradio_app.build_mumu_app(pipeline, args, str(tmp_path))
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)  # the first free port from 7860
    try:
        browser.get(demo.local_url)
        wait = WebDriverWait(browser, 60)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#music input[type=file]"))[0].send_keys(str(CLIP))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#music audio"))  # the upload is in
        # The slider's low end: 1 s of music, not the default 10, keeps the test fast.
        browser.find_element(By.CSS_SELECTOR, "#seconds input[type=range]").send_keys(Keys.HOME)
        browser.find_element(By.CSS_SELECTOR, "#prompt textarea").send_keys("Generate a music\n")
        # gradio 6 plays chat audio with a waveform player whose <audio> element never enters the page:
        # its clock reads 0:00 until the browser has fetched and decoded the music, then its length;
        # its download link gives the file's address.
        clock = wait.until(lambda d: [e for e in d.find_elements(By.CSS_SELECTOR, PLAYER_CLOCK)
                                      if e.text.strip() not in ("", "0:00")])[0]
        SCREENSHOT.parent.mkdir(exist_ok=True)
        browser.save_screenshot(str(SCREENSHOT))
        print(f"screenshot: {SCREENSHOT}")
        assert clock.text == "0:01"
        bot = browser.find_elements(By.CSS_SELECTOR, '#chat [data-testid="bot"]')
        assert bot[0].text.endswith("[AUD7]")
        link = browser.find_element(By.CSS_SELECTOR, '#chat a[data-testid="download-link"]').get_attribute("href")
        with urllib.request.urlopen(link, timeout=30) as response:
            assert response.status == 200
            wave, rate = soundfile.read(BytesIO(response.read()))
        assert abs(len(wave) / rate - 1.0) < 0.1
    finally:
        demo.close()


def test_browser_page_answers_at_its_default_settings(default_args, browser, tmp_path):
    """Nothing overridden: the sliders start at the flags' defaults, the max length beyond the model's context."""
    pipeline = gradio_app.load_mumu_model(default_args)
    assert default_args.max_gen_len >= pipeline.max_seq_len  # with the prompt, more than the context holds
    demo = gradio_app.build_mumu_app(pipeline, default_args, str(tmp_path))
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        browser.get(demo.local_url)
        wait = WebDriverWait(browser, 120)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#prompt textarea"))[0].send_keys("Generate a music\n")
        clock = wait.until(lambda d: [e for e in d.find_elements(By.CSS_SELECTOR, PLAYER_CLOCK)
                                      if e.text.strip() not in ("", "0:00")])[0]
        assert clock.text == "0:10"  # the length slider's default
        bot = browser.find_elements(By.CSS_SELECTOR, '#chat [data-testid="bot"]')
        assert bot[0].text.endswith("[AUD7]") and "Cannot answer" not in browser.page_source
    finally:
        demo.close()

