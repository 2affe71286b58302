"""Synthetic MuMu-LLaMA data in the original record schema, and the checks that show each stage learnt.

Beside the synthetic music of `synthetic.py` (whose clips are captioned from their facts), rendered
images whose colour is their class: a square or a disc of one of four colours, at a random place and
size, on a noisy grey ground. Records for every stage:

    music_captions_{train,test}.json   audio -> caption (stage 1; stage 2 reads it with task caption_to_music)
    image_captions_{train,test}.json   image -> "A red square." (stage 1)
    image_music_{train,test}.json      image -> the music its colour stands for + [AUD0..7] (stage 3)
    images/*.png, images.json          the images and their facts

The checks (`check_stage1` .. `check_stage3`) run a trained MuMuPipeline on the held-out records.
"""

import json
import random
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..media import load_image
from .dataset import derangement
from .synthetic import stated_class

COLOURS = {"red": (215, 40, 40), "green": (40, 170, 60), "blue": (45, 70, 215), "yellow": (225, 205, 40)}
SHAPES = ("square", "disc")
# Stage 3 (and the demo MuMu-LLaMA's pictures): the music each colour asks for, captioned as the stage-1/2
# music is. Each pair of colours differs in the instrument and in two of tempo, mode and loudness (no pair is
# a near miss).
COLOUR_FACTS = {"red": {"tempo": "fast", "instrument": "brass", "mode": "major", "loudness": "loud"},
                "green": {"tempo": "fast", "instrument": "guitar", "mode": "minor", "loudness": "quiet"},
                "blue": {"tempo": "slow", "instrument": "piano", "mode": "major", "loudness": "quiet"},
                "yellow": {"tempo": "slow", "instrument": "flute", "mode": "minor", "loudness": "loud"}}
MUSIC_CAPTION = "A {tempo} {instrument} piece in a {mode} key, played {loudness}."
COLOUR_MUSIC = {colour: MUSIC_CAPTION.format(**facts) for colour, facts in COLOUR_FACTS.items()}
DESCRIBE_MUSIC, DESCRIBE_IMAGE, IMAGE_TO_MUSIC = ("Describe the music.", "Describe the image.",
                                                  "Compose music for this image.")


def draw(colour: str, shape: str, rng: random.Random, size: int = 64) -> Image.Image:
    ground = np.random.default_rng(rng.randrange(2**32)).normal(128, 20, (size, size, 3)).clip(0, 255)
    image = Image.fromarray(ground.astype(np.uint8))
    side = rng.randint(size // 3, size * 2 // 3)
    x, y = rng.randint(0, size - side), rng.randint(0, size - side)
    box = (x, y, x + side, y + side)
    pen = ImageDraw.Draw(image)
    (pen.rectangle if shape == "square" else pen.ellipse)(box, fill=COLOURS[colour])
    return image


def record(file: str, modality: str, question: str, answer: str, music_caption: str | None = None) -> dict:
    gpt = {"from": "gpt", "value": answer, "output_modality": "audio" if music_caption else "text"}
    if music_caption:
        gpt["caption"] = music_caption
    return {"input_file": file, "output_file": "", "conversation": [
        {"from": "human", "value": question, "input_modality": modality}, gpt]}


def write_json(path: Path, items) -> None:
    path.write_text(json.dumps(items, indent=1))


def make_mumu_dataset(out, music, images: int = 240, test_fraction: float = 0.25, seed: int = 0) -> dict:
    """Write the images and the records of every stage into `out`; `music` is a folder written by
    synthetic.make_dataset (its facts.json, whose first test share of clips is held out). Returns counts."""
    out, music = Path(out), Path(music)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    facts = {}
    for i in range(images):
        facts[f"{i:04d}.png"] = {"colour": rng.choice(sorted(COLOURS)), "shape": rng.choice(SHAPES)}
        draw(**facts[f"{i:04d}.png"], rng=rng).save(out / "images" / f"{i:04d}.png")
    write_json(out / "images.json", facts)
    names = sorted(facts)
    held = round(len(names) * test_fraction)
    clip_facts = json.loads((music / "facts.json").read_text())
    clips = sorted(clip_facts)
    clips_held = round(len(clips) * 0.2)  # synthetic.make_dataset's held-out share
    for split, image_names, clip_names in (("train", names[held:], clips[clips_held:]),
                                           ("test", names[:held], clips[:clips_held])):
        write_json(out / f"music_captions_{split}.json",
                   [record(n, "audio", DESCRIBE_MUSIC, MUSIC_CAPTION.format(**clip_facts[n])) for n in clip_names])
        write_json(out / f"image_captions_{split}.json",
                   [record(f"images/{n}", "image", DESCRIBE_IMAGE, f"A {facts[n]['colour']} {facts[n]['shape']}.")
                    for n in image_names])
        write_json(out / f"image_music_{split}.json",
                   [record(f"images/{n}", "image", IMAGE_TO_MUSIC, COLOUR_MUSIC[facts[n]["colour"]],
                           COLOUR_MUSIC[facts[n]["colour"]]) for n in image_names])
    return {"images": images, "held_out_images": held, "clips": len(clips), "held_out_clips": clips_held}


def stated_colour(answer: str) -> str | None:
    words = set(re.findall(r"[a-z]+", answer.lower()))
    named = [c for c in COLOURS if c in words]
    return named[0] if len(named) == 1 else None


def _requests(records: list[dict], root: Path, music_root: Path, sample_rate: int, shuffle_seed: int | None):
    from llama import load_audio
    from llama.pipeline import Request

    files = [r["input_file"] for r in records]
    heard = files
    if shuffle_seed is not None:  # each request gets another record's input (a seeded derangement)
        heard = [files[j] for j in derangement(len(files), shuffle_seed)]
    requests = []
    for r, file in zip(records, heard, strict=True):
        question, modality = r["conversation"][0]["value"], r["conversation"][0]["input_modality"]
        if modality == "audio":
            requests.append(Request(question, audio=load_audio(music_root / file, sample_rate)))
        else:
            requests.append(Request(question, image=load_image(root / file)))
    return requests


def respond(pipe, requests, batch_size: int = 32, max_new_tokens: int = 32):
    replies = []
    for start in range(0, len(requests), batch_size):
        replies += pipe.respond(requests[start:start + batch_size], max_new_tokens=max_new_tokens)
    return replies


def check_stage1(pipe, root, music_root, shuffle_seed: int | None = None) -> dict:
    """Held-out captions: {"music": instrument accuracy, "image": colour accuracy, chances, examples};
    with `shuffle_seed`, every request sees another record's input."""
    root, music_root = Path(root), Path(music_root)
    result = {}
    for name, file, truth in (("music", "music_captions_test.json", lambda a, r: stated_class("instrument", a) ==
                               re.search(r"(\w+) piece", r["conversation"][1]["value"]).group(1)),
                              ("image", "image_captions_test.json", lambda a, r: stated_colour(a) ==
                               stated_colour(r["conversation"][1]["value"]))):
        records = json.loads((root / file).read_text())
        replies = respond(pipe, _requests(records, root, music_root, pipe.sample_rate, shuffle_seed))
        correct = sum(truth(reply.text, r) for reply, r in zip(replies, records, strict=True))
        classes = 7 if name == "music" else len(COLOURS)
        result[name] = {"n": len(records), "accuracy": correct / len(records), "chance": 1 / classes,
                        "examples": [reply.text for reply in replies[:3]]}
    return result


def _targets(cache, captions: list[str]) -> torch.Tensor:
    from llama.data.mumu import caption_key

    return torch.stack([cache.get(caption_key(c)) for c in captions])


def check_stage2(pipe, root, target_cache, train_captions: list[str]) -> dict:
    """Held-out captions asked as music requests: the share answered with all eight [AUD] tokens in
    order, and the projector's MSE to each caption's target against that of the mean training target."""
    root = Path(root)
    from llama.pipeline import Request

    captions = [r["conversation"][1]["value"] for r in json.loads((root / "music_captions_test.json").read_text())]
    replies = respond(pipe, [Request(c) for c in captions], max_new_tokens=40)
    complete = [(c, r.conditioning) for c, r in zip(captions, replies, strict=True) if r.conditioning is not None]
    mean = _targets(target_cache, sorted(set(train_captions))).mean(0)
    result = {"n": len(captions), "audio_tokens_in_order": len(complete) / len(captions),
              "unseen_captions": sum(c not in set(train_captions) for c in captions) / len(captions)}
    if complete:
        targets = _targets(target_cache, [c for c, _ in complete])
        output = torch.stack([o for _, o in complete]).float()
        result["mse"] = torch.nn.functional.mse_loss(output, targets).item()
        result["mse_of_mean_target"] = torch.nn.functional.mse_loss(mean.expand_as(targets), targets).item()
    return result


def check_stage3(pipe, root, target_cache) -> dict:
    """Held-out images asked for music: the share answered with [AUD0..7], and the share whose
    projector output lies closer to the target of the image's own colour than to any other colour's."""
    root = Path(root)
    records = json.loads((root / "image_music_test.json").read_text())
    replies = respond(pipe, _requests(records, root, root, pipe.sample_rate, None), max_new_tokens=40)
    colours = sorted(COLOURS)
    targets = _targets(target_cache, [COLOUR_MUSIC[c] for c in colours])
    facts = json.loads((root / "images.json").read_text())
    nearest_own, own, others = 0, [], []
    for record_, reply in zip(records, replies, strict=True):
        if reply.conditioning is None:
            continue
        distances = ((targets - reply.conditioning.float()[None]) ** 2).mean(dim=(1, 2))
        k = colours.index(facts[Path(record_["input_file"]).name]["colour"])
        nearest_own += int(distances.argmin()) == k
        own.append(distances[k].item())
        others.append(torch.cat([distances[:k], distances[k + 1:]]).mean().item())
    with_audio = sum(r.conditioning is not None for r in replies)
    return {"n": len(records), "audio_tokens_in_order": with_audio / len(records),
            "mse_to_own_colour_target": float(np.mean(own)), "mse_to_other_colours_targets": float(np.mean(others)),
            "nearest_is_own_colour": nearest_own / len(records), "chance": 1 / len(colours),
            "examples": [r.text for r in replies[:3]]}
