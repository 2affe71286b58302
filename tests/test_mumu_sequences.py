"""MuMu-LLaMA training builds the original's exact sequences from the original's files: for one record of
each dataset class, the tokens and labels the original built (../shared/reference/m2ugen_sequences.json,
established by running it), id for id, through this project's published configs and data path; the loss
on them; and no record whose input cannot be read is ever trained as text."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F

from llama import Tokenizer
from llama.data.batch import collate
from llama.data.dataset import load_records
from llama.data.mumu import MuMuDataset, check_records
from llama.data.sources import read_source
from llama.multimodal import AUDIO_TOKENS
from llama.prompt import IGNORE_INDEX
from llama.testing.releases import tiny_mumu
from llama.testing.tiny import sentencepiece_model_file
from llama.testing.vision import write_image
from llama.training import TrainConfig

from conftest import ROOT

# ../shared/reference/m2ugen_sequences.json, copied: what the original built for one record of each class
ORACLE = ROOT / "tests" / "data" / "m2ugen_sequences.json"
# the oracle's dataset class -> the kind a data entry names, and the file a published config reads it from
KIND = {"MUCapsDataset": "mucaps", "COCODataset": "coco", "MUCapsDecoderDataset": "mucaps_decoder",
        "MusicQADataset": "musicqa", "AnyToMusicInstructionDataset": "any_to_music"}


def oracle_cases() -> dict:
    return json.loads(ORACLE.read_text())["cases"]


@pytest.fixture(scope="module")
def tokenizer():
    tokenizer = Tokenizer(sentencepiece_model_file())
    tokenizer.add_tokens(list(AUDIO_TOKENS))
    return tokenizer


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """The inputs the oracle's records name, as real files."""
    root = tmp_path_factory.mktemp("media")
    soundfile.write(root / "stereo_44k.wav", np.random.default_rng(0).uniform(-0.3, 0.3, (44100, 2)), 44100)
    write_image(root / "image_40x48.png", height=48, width=40)
    return root


def published(stage: int) -> TrainConfig:
    return TrainConfig.load(ROOT / "configs" / f"mumu-stage{stage}-published.yaml", {})


def built(case: dict, tokenizer, media: Path) -> dict:
    """The case's data file, as the original reads it, through read_source, check_records and MuMuDataset with
    the published config of its stage: the one item it yields."""
    config = published(case["stage"])
    kind = KIND[case["dataset_class"]]
    assert kind in [d.kind for d in config.data]  # the published config reads this class of file
    path = media / f"{kind}.json"
    path.write_text(json.dumps(case["file_content"]))
    records, unread = read_source(path, media, kind)
    kept, problems = check_records(records, tokenizer, config.max_words, template=config.prompt_template,
                                   tokenization=config.tokenization, eos=config.answer_eos)
    assert not unread and not problems and len(kept) == 1
    dataset = MuMuDataset(kept, tokenizer, config.max_words, config.prompt_template, config.tokenization,
                          eos=config.answer_eos)
    return dataset[0]


@pytest.mark.parametrize("name", sorted(oracle_cases()))
def test_published_configs_build_the_originals_tokens_and_labels(name, tokenizer, media):
    case = oracle_cases()[name]
    item = built(case, tokenizer, media)
    assert item["tokens"].tolist() == case["tokens"]
    # the original marks ignored labels 0 (never a real target: <unk>), this project IGNORE_INDEX
    assert item["labels"].masked_fill(item["labels"] == IGNORE_INDEX, 0).tolist() == case["labels"]
    assert (item["labels"] != IGNORE_INDEX).sum() == len(case["tokens"]) - case["num_prompt_tokens"]


@pytest.mark.parametrize("name", sorted(oracle_cases()))
def test_the_loss_through_the_data_path_is_the_loss_on_the_originals_sequence(name, tokenizer, media):
    case = oracle_cases()[name]
    batch = collate([built(case, tokenizer, media)], pad_id=0)
    model = tiny_mumu(tokenizer, steps=0)
    features = {"music": torch.randn(1, 64, generator=torch.Generator().manual_seed(0))}
    targets = torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(1))
    tokens, labels = torch.tensor([case["tokens"]]), torch.tensor([case["labels"]])
    with torch.no_grad():
        ce, mse = model.loss(batch["tokens"], batch["labels"], features, targets)
        logits = model.logits(tokens, features)  # the original's CE: labels shifted, 0 ignored
        original_ce = F.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=0)
        original_mse = model.loss(tokens, labels.masked_fill(labels == 0, IGNORE_INDEX), features, targets)[1]
    # to 1e-6 of the loss: float32 sums the same terms in another order (the mean per answer, then per row)
    torch.testing.assert_close(ce, original_ce, rtol=1e-6, atol=0)
    torch.testing.assert_close(mse, original_mse, rtol=1e-6, atol=1e-9)
    assert (mse > 0) == (AUDIO_TOKENS[0] in case["prompt_plus_answer"])


def test_this_projects_configs_end_answers_with_eos_and_tokenise_them_on_their_own(tokenizer, media):
    """configs/mumu-stageN.yaml (not -published) differ on purpose: the answer's own tokens and an EOS, which
    teaches the model to stop (docs/mumu-llama.md); the [AUD] join stays the original's."""
    case = oracle_cases()["stage3_image_to_music"]
    config = TrainConfig.load(ROOT / "configs" / "mumu-stage3.yaml", {})
    assert (config.tokenization, config.answer_eos) == ("separate", True)
    path = media / "project.json"
    path.write_text(json.dumps(case["file_content"]))
    records, _ = read_source(path, media, "any_to_music")
    item = MuMuDataset(records, tokenizer, config.max_words, config.prompt_template, config.tokenization,
                       eos=config.answer_eos)[0]
    answer = item["labels"][item["labels"] != IGNORE_INDEX].tolist()
    assert answer[-9:] == [*range(32000, 32008), tokenizer.eos_id]
    assert answer[0] == tokenizer.encode("Here", bos=False)[0]  # "▁Here": the answer tokenised alone


def test_records_whose_input_cannot_be_read_are_counted_not_trained_as_text(tmp_path):
    """A source that declares a modality drops no input in silence: an unknown media key, a missing or empty
    clip, an input modality the kind cannot take are each counted and the record left out."""
    qa = {"conversation": [{"from": "human", "value": "Tempo?"}, {"from": "gpt", "value": "Slow."}]}
    (tmp_path / "musicqa.json").write_text(json.dumps([
        {"image_name": "a.wav", **qa}, {"audio_name": "b.wav", **qa}, {"audio_path": "c.wav", **qa}, qa,
        {"image_name": "", **qa}]))
    records, problems = read_source(tmp_path / "musicqa.json", tmp_path, "musicqa")
    assert [r.input_file.name for r in records] == ["a.wav", "b.wav"]
    assert all(r.input_modality == "audio" for r in records)
    assert problems == {"media under an unknown key 'audio_path'": 1, "no clip named (audio_name or image_name)": 2}

    def instruction(**extra):
        gpt = {"from": "gpt", "value": "Here.", "caption": "a calm tune", "output_modality": "audio"}
        return {"input_file": "x.png", "output_file": "y.wav", **extra, "conversation": [
            {"from": "human", "value": "Music for this", "input_modality": "image"}, gpt]}

    broken = instruction()
    broken["conversation"][0]["input_modality"] = "smell"
    (tmp_path / "muimage.json").write_text(json.dumps([instruction(), instruction(input_file=""), broken,
                                                       instruction(image="z.jpg")]))
    records, problems = read_source(tmp_path / "muimage.json", tmp_path, "any_to_music")
    assert len(records) == 1 and records[0].answer == f"Here. {''.join(AUDIO_TOKENS)}"
    assert problems == {"image input without an input_file": 1, "media under an unknown key 'image'": 1,
                        "input_modality 'smell', not one of audio, image, video": 1}

    # this project's record schema and MU-LLaMA's MusicQA reader: the same rule
    (tmp_path / "records.json").write_text(json.dumps([{"audio": "clip.wav", **qa}, {"image_name": "c.wav", **qa}]))
    records, problems = read_source(tmp_path / "records.json", tmp_path, "records")
    assert [r.input_modality for r in records] == ["audio"] and problems == {"media under an unknown key 'audio'": 1}
    records, problems = load_records(tmp_path / "records.json", tmp_path)
    assert [r.audio.name for r in records] == ["c.wav"] and problems == {"media under an unknown key 'audio'": 1}
    with pytest.raises(ValueError, match="JSON object"):
        read_source(tmp_path / "records.json", tmp_path, "mucaps")


def test_caption_files_are_the_originals_objects(tmp_path):
    (tmp_path / "MUCapsCaptions.json").write_text(json.dumps({"a.wav": "Calm piano.", "b.wav": "", "": "Drums."}))
    records, problems = read_source(tmp_path / "MUCapsCaptions.json", tmp_path / "audios", "mucaps")
    assert [(r.instruction, r.answer, r.input_file, r.input_modality) for r in records] == [
        ("", "Calm piano.", tmp_path / "audios" / "a.wav", "audio")]
    assert problems == {"no caption": 1, "no audio file named": 1}
    requests, _ = read_source(tmp_path / "MUCapsCaptions.json", tmp_path, "mucaps_decoder")
    assert [(r.instruction, r.answer, r.caption, r.input_file) for r in requests][0] == (
        "Calm piano.", "Calm piano." + "".join(AUDIO_TOKENS), "Calm piano.", None)


@pytest.mark.parametrize("kind, content, instruction, answer", [
    ("muvideo", {"clip.mkv": "A ball rolls down a hill."}, "", "A ball rolls down a hill."),
    ("alpaca", [{"conversation": [{"from": "human", "value": "Name a colour."}, {"from": "gpt", "value": "Blue."}]}],
     "Name a colour.", "Blue."),
    ("any_to_music", [{"input_file": "clip.wav", "output_file": "out.wav", "conversation": [
        {"from": "human", "value": "Make it faster.", "input_modality": "audio", "caption": "a slow tune"},
        {"from": "gpt", "value": "Here it is.", "caption": "a fast tune", "output_modality": "audio"}]}],
     "Make it faster.", "Here it is. " + "".join(AUDIO_TOKENS))], ids=["MUVideo", "Alpaca", "MUEdit"])
def test_the_other_classes_follow_the_originals_rule(kind, content, instruction, answer, tokenizer, tmp_path):
    """The classes the oracle has no record of (MUVideo captions, Alpaca, MUVideo and MUEdit instructions)
    build what MUMU.md section 3 says the original builds: format_prompt(instruction) + answer as one string,
    BOS and no EOS, the prompt's tokens masked."""
    from llama import format_prompt

    (tmp_path / "data.json").write_text(json.dumps(content))
    records, problems = read_source(tmp_path / "data.json", tmp_path, kind)
    config = published(3)
    _, tokens, labels = MuMuDataset(records, tokenizer, config.max_words, config.prompt_template,
                                    config.tokenization, eos=config.answer_eos).items[0]  # no input decoded
    prompt = format_prompt(instruction, "alpaca")
    expected = tokenizer.encode(prompt + answer, bos=True)
    masked = len(tokenizer.encode(prompt, bos=True))
    assert not problems and tokens.tolist() == expected
    assert labels.tolist() == [IGNORE_INDEX] * masked + expected[masked:]
