import numpy as np
import pytest
import soundfile

from llama import AudioError, load_audio


def tone(seconds, rate, freq=440.0, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([wave, 0.5 * wave], axis=1) if channels == 2 else wave


def peak_frequency(wave, rate):
    spectrum = np.abs(np.fft.rfft(wave))
    return np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()]


@pytest.mark.parametrize("suffix,rate,channels", [(".wav", 44100, 2), (".flac", 44100, 2), (".ogg", 8000, 1),
                                                  (".mp3", 8000, 1), (".wav", 24000, 1)])
def test_formats_rates_and_channels(tmp_path, suffix, rate, channels):
    path = tmp_path / f"clip{suffix}"
    soundfile.write(path, tone(2.0, rate, channels=channels), rate)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 48000) < 2000  # 2 s at 24 kHz (MP3 adds encoder padding)
    assert abs(peak_frequency(wave, 24000) - 440.0) < 2.0
    if channels == 2 and suffix != ".mp3":  # channel mean of (x, x/2) is 0.75 x
        assert np.abs(wave).max() == pytest.approx(0.375, abs=0.01)


def test_bad_input_gets_one_clear_error(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    silent = tmp_path / "zero.wav"
    soundfile.write(silent, np.zeros(0, dtype=np.float32), 24000)
    broken = tmp_path / "nan.wav"
    soundfile.write(broken, np.array([0.1, np.nan, 0.2] * 100, dtype=np.float32), 24000, subtype="FLOAT")
    cases = {tmp_path / "missing.wav": "not found", empty: "empty file", text: "cannot decode",
             silent: "zero-length", broken: "NaN"}
    for path, message in cases.items():
        with pytest.raises(AudioError, match=message):
            load_audio(path)


def test_paths_that_are_no_audio_file_say_what_they_are(tmp_path):
    folder = tmp_path / "song.wav"
    folder.mkdir()
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    dangling = tmp_path / "gone.wav"
    dangling.symlink_to(tmp_path / "deleted.wav")
    png = tmp_path / "cover.mp3"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    cases = {folder: "is a folder, not an audio file", loop: "symbolic link loop",
             dangling: "is a link to .*deleted.wav, which does not exist", png: "is not audio: it is a PNG image"}
    for path, message in cases.items():
        with pytest.raises(AudioError, match=message):
            load_audio(path)
