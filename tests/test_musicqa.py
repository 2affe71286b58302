"""MusicQA generation: source readers on fixtures in the real formats, lenient parsing with a
scripted LLM, bounded retries, kill-and-resume, generate_dataset.py, and SmolLM2 end to end."""

import csv
import json
import subprocess
import sys
import textwrap
import time
from collections import Counter

import numpy as np
import pytest
import soundfile

from llama.musicqa.annotate import annotate
from llama.musicqa.prompts import FIXED_QUESTIONS, parse_answer, parse_fixed, parse_open, parse_question
from llama.musicqa.sources import mtg_clips, mtt_clips, musiccaps_clips

from conftest import ROOT

CAPTIONS = ['A rock song, with "distorted" guitars,\nand loud drums.', "Une chanson française — café, piano doux.",
            "No audio for this one.", "A calm flute melody over strings."]
MTT_TAGS = ["guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock"]


def tone(path, seconds=0.5, rate=16000, channels=1, fmt=None):
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t)
    soundfile.write(path, np.stack([wave] * channels, axis=1), rate, format=fmt)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    caps = root / "MusicCaps"
    (caps / "audios").mkdir(parents=True)
    with (caps / "musiccaps-public.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption",
                         "author_id", "is_balanced_subset", "is_audioset_eval"])
        for i, caption in enumerate(CAPTIONS):
            writer.writerow([f"yt{i}-_x", 30 * i, 30 * i + 10, "/m/04rlf", "['rock', 'loud']", caption, 4, "False",
                             "True"])
            if i != 2:
                tone(caps / "audios" / f"[yt{i}-_x]-[{30 * i}-{30 * i + 10}].wav", channels=2)
    mtt = root / "MTT"
    (mtt / "audios").mkdir(parents=True)
    rows = [("2", [1, 1, 1, 0, 1, 1, 0, 0], "f/a-b-01-x-0-29.mp3"),  # kept
            ("6", [0, 1, 1, 1, 0, 0, 0, 1], "0/c-d-02-y-0-29.mp3"),  # 4 tags: left out
            ("9", [1, 1, 1, 1, 1, 1, 1, 1], "3/missing-0-29.mp3"),  # no audio: left out
            ("12", [0, 0, 1, 1, 1, 1, 1, 0], "a/e-f-03-z-0-29.mp3")]  # kept
    lines = ["\t".join(['"clip_id"', *[f'"{t}"' for t in MTT_TAGS], '"mp3_path"'])]
    for clip_id, flags, path in rows:
        lines.append("\t".join([f'"{clip_id}"', *[f'"{v}"' for v in flags], f'"{path}"']))
        if "missing" not in path:
            tone(mtt / "audios" / path.split("/")[-1], fmt="MP3")
    (mtt / "annotations_final.csv").write_text("\n".join(lines) + "\n")
    mtg = root / "MTG"
    tags = "genre---rock\tinstrument---guitar\tmood/theme---happy\tgenre---pop\tinstrument---drums"
    tracks = [("track_0000214", "00/214.mp3", tags), ("track_0000215", "10/215.mp3", tags),
              ("track_0000216", "03/216.mp3", "\t".join(tags.split("\t")[:4])),
              ("track_0000217", "09/217.mp3", tags + "\tmood/theme---energetic")]
    lines = ["TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"]
    for track, path, track_tags in tracks:
        lines.append(f"{track}\tartist_000001\talbum_000001\t{path}\t30.0\t{track_tags}")
        (mtg / path).parent.mkdir(parents=True, exist_ok=True)
        tone(mtg / path, fmt="MP3")
    (mtg / "raw_30s_cleantags_50artists.tsv").write_text("\n".join(lines) + "\n")
    return {"musiccaps": caps, "mtt": mtt, "mtg": mtg}


def test_sources_select_the_clips_the_original_kept(sources):
    caps = musiccaps_clips(sources["musiccaps"])
    assert [c.description for c in caps] == [CAPTIONS[0].strip(), CAPTIONS[1], CAPTIONS[3]]  # no audio: left out
    assert caps[0].clip_id == "yt0-_x-0-10" and caps[0].kind == "caption"
    mtt = mtt_clips(sources["mtt"])  # >= 5 tags and the audio present
    assert [c.clip_id for c in mtt] == ["2", "12"]
    assert mtt[0].description == "guitar, classical, slow, strings, drums" and mtt[0].kind == "tags"
    mtg = mtg_clips(sources["mtg"])  # folders 00-09, >= 5 tags
    assert [c.clip_id for c in mtg] == ["track_0000214", "track_0000217"]
    assert mtg[0].description == "rock, guitar, happy, pop, drums"


GOOD_FIXED = "Sure! Here are the answers:\n**1.** It is a rock song.\n2) Loud guitars and drums.\n" \
             "3. Describe... no: I hear guitars.\n4 - It could be played at a party.\n\nHope this helps!"
GOOD_OPEN = "\n".join(f"{i}. What is aspect {i} of the music?\nAnswer: Aspect {i} is fine." for i in range(1, 6))


def test_parsing_is_lenient_and_validates():
    assert parse_fixed(GOOD_FIXED) == ["It is a rock song.", "Loud guitars and drums.",
                                       "Describe... no: I hear guitars.", "It could be played at a party."]
    assert parse_fixed("1. Describe the audio: A slow piece.\n2. x\n3. y\n4. z")[0] == "A slow piece."
    assert parse_fixed("1. a\n2. b\n4. d") is None  # a missing number
    assert parse_fixed("1. a\n2. \n3. c\n4. d") is None  # an empty answer
    assert parse_fixed("The music is nice.") is None  # no numbers at all
    assert parse_open(GOOD_OPEN)[4] == ("What is aspect 5 of the music?", "Aspect 5 is fine.")
    one_line = "\n".join(f"Q{i}: Is part {i} loud? Yes, it is." for i in range(1, 6))
    assert parse_open(one_line)[0] == ("Is part 1 loud?", "Yes, it is.")
    labelled = "\n".join(f"{i}. **Question:** Why {i}?\n**Answer:** Because\nof {i}." for i in range(1, 7))
    assert parse_open(labelled) == [(f"Why {i}?", f"Because of {i}.") for i in range(1, 6)]  # first 5 of 6
    assert parse_open("\n".join(GOOD_OPEN.splitlines()[:8])) is None  # fewer than 5 pairs
    empty = GOOD_OPEN.replace("Answer: Aspect 3 is fine.", "Answer:")
    assert parse_open(empty) is None  # an empty answer does not count
    assert parse_answer("Answer: **It is slow.**") == "It is slow." and parse_answer(" \n ...") is None
    assert parse_question("What a lovely piece! What is its tempo?") == "What is its tempo?"
    assert parse_question("Question: Is it fast?") == "Is it fast?"
    assert parse_question('A listener might ask: "What is the mood of this music?') == "What is the mood of this music?"
    assert parse_question("Question: Fast?") is None  # too short to be a real question
    assert parse_question("Here is a question about it.") is None


class ScriptedLLM:
    """Answers from a script: per (request kind, description), the outputs to give in turn (the last repeats)."""

    def __init__(self, script, delay=0.0):
        self.script, self.delay, self.served, self.requests = script, delay, Counter(), 0

    def generate(self, conversations, temperature):
        time.sleep(self.delay)
        out = []
        for conversation in conversations:
            kind = "fixed" if "four questions" in conversation[0]["content"] else "open"
            key = (kind, conversation[-1]["content"].split(": ", 1)[1])
            outputs = self.script.get(key, [GOOD_FIXED if kind == "fixed" else GOOD_OPEN])
            out.append(outputs[min(self.served[key], len(outputs) - 1)])
            self.served[key] += 1
            self.requests += 1
        return out


def test_retries_are_bounded_and_failures_recorded(sources, tmp_path):
    clips = musiccaps_clips(sources["musiccaps"])
    script = {("fixed", clips[0].description): ["1. only one answer", GOOD_FIXED],  # right at the 2nd try
              ("open", clips[1].description): ["no pairs here"]}  # never right
    llm = ScriptedLLM(script)
    counts = annotate(clips, llm, tmp_path / "out.jsonl", batch_size=2, retries=3)
    assert counts == {"clips": 3, "skipped": 0, "ok": 2, "failed": 1}
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["clip_id"] for r in records] == [c.clip_id for c in clips]
    assert records[0]["status"] == "ok" and records[0]["tries"] == {"fixed": 2, "open": 1}
    assert [p["question"] for p in records[0]["fixed"]] == FIXED_QUESTIONS and len(records[0]["open"]) == 5
    assert records[1]["status"] == "failed" and records[1]["raw"]["open"] == "no pairs here"
    assert llm.served[("open", clips[1].description)] == 4  # 1 try + 3 retries, then it stops
    assert records[1]["description"] == CAPTIONS[1]  # non-ASCII kept as is


DRIVER = textwrap.dedent("""
    import sys
    sys.path[:0] = [{tests!r}]
    from llama.musicqa.annotate import annotate
    from llama.musicqa.sources import musiccaps_clips, Clip
    from test_musicqa import ScriptedLLM
    clips = [Clip(f"c{{i}}", musiccaps_clips({folder!r})[0].audio, f"clip {{i}}", "caption") for i in range(12)]
    annotate(clips, ScriptedLLM({{}}, delay=0.1), {output!r}, batch_size=1)
""")


def test_a_killed_run_resumes_with_every_clip_once(sources, tmp_path):
    output = tmp_path / "out.jsonl"
    driver = DRIVER.format(tests=str(ROOT / "tests"), folder=str(sources["musiccaps"]),
                           output=str(output))
    process = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while (not output.exists() or output.read_text().count("\n") < 3) and process.poll() is None:
        time.sleep(0.02)
    process.kill()
    process.wait()
    done = output.read_text().count("\n")
    assert 3 <= done < 12, process.stderr.read().decode()[-2000:]
    with output.open("a") as f:  # a kill in the middle of writing a line
        f.write('{"clip_id": "c11", "status": "o')
    subprocess.run([sys.executable, "-c", driver], check=True, capture_output=True)
    ids = [json.loads(line)["clip_id"] for line in output.read_text().splitlines()]
    assert sorted(ids) == sorted(f"c{i}" for i in range(12))  # every clip exactly once


def test_generate_dataset_numbers_clips_across_sources(sources, tmp_path):
    for name, reader in (("musiccaps", musiccaps_clips), ("mtt", mtt_clips), ("mtg", mtg_clips)):
        clips = reader(sources[name])
        script = {("open", clips[0].description): ["nothing"]} if name == "mtt" else {}  # MTT's first clip fails
        annotate(list(reversed(clips)), ScriptedLLM(script), sources[name] / {"musiccaps": "MusicCapsAQA.jsonl",
                 "mtt": "MTT_AQA.jsonl", "mtg": "MTG_AQA.jsonl"}[name], retries=0)
    out = tmp_path / "MusicQA"
    subprocess.run([sys.executable, str(ROOT / "MusicQA" / "generate_dataset.py"), "--musiccaps",
                    str(sources["musiccaps"]), "--mtt", str(sources["mtt"]), "--mtg", str(sources["mtg"]),
                    "--musicqa", str(out)], check=True, capture_output=True)
    splits = {name: json.loads((out / name).read_text()) for name in
              ("PretrainMusicQA.json", "FinetuneMusicQA.json", "EvalMusicQA.json")}
    names = {split: sorted({r["audio_name"] for r in rows}) for split, rows in splits.items()}
    assert names == {"PretrainMusicQA.json": ["000000.wav", "000001.wav", "000002.wav"],
                     "FinetuneMusicQA.json": ["000003.wav"], "EvalMusicQA.json": ["000004.wav", "000005.wav"]}
    for rows in splits.values():
        assert all(Counter(r["audio_name"] for r in rows)[n] == 9 for n in {r["audio_name"] for r in rows})
        assert all([t["from"] for t in r["conversation"]] == ["human", "gpt"] for r in rows)
    assert [r["conversation"][0]["value"] for r in splits["EvalMusicQA.json"][:4]] == FIXED_QUESTIONS
    mapping = json.loads((out / "mapping.json").read_text())
    assert mapping["000000.wav"] == {"source": "musiccaps", "clip_id": "yt0-_x-0-10",
                                     "original": "audios/[yt0-_x]-[0-10].wav"}
    assert mapping["000003.wav"]["clip_id"] == "12" and mapping["000005.wav"]["original"] == "09/217.mp3"
    data, rate = soundfile.read(out / "audios" / "000004.wav")  # an MP3 converted, rate kept
    assert rate == 16000 and len(data) > 0 and sorted(p.name for p in (out / "audios").iterdir())[-1] == "000005.wav"


@pytest.mark.slow
def test_smollm2_end_to_end(sources, smollm2_dir, tmp_path):
    output = tmp_path / "caps.jsonl"
    subprocess.run([sys.executable, str(ROOT / "MusicQA" / "musiccaps_process.py"), "--dir", str(sources["musiccaps"]),
                    "--output", str(output), "--llm", str(smollm2_dir), "--prompting", "item", "--limit", "1",
                    "--max_new_tokens", "64", "--retries", "2"], check=True, capture_output=True)
    (record,) = [json.loads(line) for line in output.read_text().splitlines()]
    assert record["clip_id"] == "yt0-_x-0-10" and record["status"] == "ok", record
    for pair in record["fixed"] + record["open"]:  # real English sentences
        words = pair["answer"].split()
        assert len(words) >= 3 and sum(w.isascii() for w in words) >= 0.8 * len(words), pair
    assert all(p["question"].endswith("?") for p in record["open"])


def test_llama_chat_llm_decodes_as_transformers_with_continuous_batching(smollm2_dir):
    """A LLaMA-architecture annotator LLM runs this project's generation loop (continuous batching over
    3 rows of 2): its greedy answers are transformers' generate's, conversation by conversation."""
    import torch
    from transformers import AutoModelForCausalLM

    from llama.musicqa.annotate import ChatLLM

    llm = ChatLLM(str(smollm2_dir), max_new_tokens=12, decode_batch=2)
    assert llm.llama is not None
    chats = [[{"role": "user", "content": q}] for q in ("What is a cello?", "Hi", "Name a drum.")]
    ours = llm.generate(chats, temperature=0.0)
    hf = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    for chat, text in zip(chats, ours, strict=True):
        ids = llm.tokenizer(llm.render(chat), add_special_tokens=False, return_tensors="pt")["input_ids"]
        out = hf.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=llm.stop_ids)
        assert text == llm.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    sampled = llm.generate(chats, temperature=0.7)
    assert all(s.strip() for s in sampled)
