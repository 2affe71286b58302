"""The documented pipeline on a fresh clone: tiny models -> pretrain.sh -> finetune.sh -> inference.py."""

import hashlib
import json
import subprocess
import sys

from conftest import ROOT, run_here


def test_tiny_pipeline_end_to_end(tiny_models, tmp_path, capsys):
    tiny = tiny_models  # scripts/make_tiny_models.py with its defaults (conftest: built once per run)
    paths = [f"mert_path={tiny / 'MERT'}", f"feature_cache={tiny / 'cache'}",
             f"data=[{{path: {tiny / 'synthetic' / 'train.json'}, audio_root: {tiny / 'synthetic' / 'audios'}}}]"]
    subprocess.run([str(ROOT / "pretrain.sh"), str(tiny / "LLaMA"), str(ROOT / "configs" / "tiny-pretrain.yaml"),
                    str(tmp_path / "pre"), "--set", *paths, "max_steps=3", "log_every=1"],
                   check=True, capture_output=True)
    subprocess.run([str(ROOT / "finetune.sh"), str(tiny / "LLaMA"), str(tmp_path / "pre" / "checkpoint.safetensors"),
                    str(ROOT / "configs" / "tiny-finetune.yaml"), str(tmp_path / "fine"), "--set", *paths,
                    "max_steps=2", "log_every=1"], check=True, capture_output=True)
    pre = json.loads((tmp_path / "pre" / "checkpoint.json").read_text())
    fine = json.loads((tmp_path / "fine" / "checkpoint.json").read_text())
    assert (pre["mu_llama"]["phase"], pre["step"], fine["mu_llama"]["phase"], fine["step"]) == ("pretrain", 3,
                                                                                                 "finetune", 2)
    report, *logged = [json.loads(line) for line in (tmp_path / "fine" / "log.jsonl").read_text().splitlines()]
    assert len(logged) == 2 and report["data"][0]["kept"] == report["data"][0]["records"] > 0
    assert report["pretrained"]["keep"] == "adapter" and set(report["pretrained"]["loaded"]) == {
        "bridges", "prefix", "gates"}  # finetune starts from pretraining's adapter, as the original
    clip = sorted((tiny / "synthetic" / "audios").glob("*.wav"))[0]
    out = subprocess.run([sys.executable, str(ROOT / "MU-LLaMA" / "inference.py"), "--model",
                          str(tmp_path / "fine" / "checkpoint.safetensors"), "--llama_dir", str(tiny / "LLaMA"),
                          "--mert_path", str(tiny / "MERT"), "--audio_path", str(clip), "--question",
                          "What instrument is playing?", "--max_gen_len", "8", "--temperature", "0"],
                         check=True, capture_output=True, text=True).stdout
    assert "Q: What instrument is playing?" in out and "\nA: " in out
    sys.path.insert(0, str(ROOT / "scripts"))
    import eval_synthetic  # its command line, in this process

    status, table, err = run_here(eval_synthetic.main, [
        "--model", tmp_path / "fine" / "checkpoint.safetensors", "--llama_dir", tiny / "LLaMA", "--mert_path",
        tiny / "MERT", "--data", tiny / "synthetic", "--limit", "8", "--output", tmp_path / "eval.json"], capsys)
    assert status == 0, err
    assert table.startswith("| question | n | accuracy | with shuffled audio | chance |")
    scored = json.loads((tmp_path / "eval.json").read_text())
    asked = json.loads((tiny / "synthetic" / "test.json").read_text())[:8]
    assert sum(row["n"] for row in scored["own_audio"].values()) == sum(r["kind"] != "caption" for r in asked)
    assert scored["own_audio"].keys() == scored["shuffled_audio"].keys()


def test_make_tiny_models_is_bit_identical_for_the_same_seed(tmp_path):
    """The same seed gives the same files: data, tokenizer, tiny LLaMA, tiny MERT (whose training masks
    time steps with numpy's generator) and the feature cache."""
    digests = []
    for run in ("a", "b"):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_models.py"), "--out", str(tmp_path / run),
                        "--clips", "12", "--seconds", "1.5", "--text_steps", "3", "--audio_steps", "4"],
                       check=True, capture_output=True)
        files = sorted(p for p in (tmp_path / run).rglob("*") if p.is_file())
        digests.append({str(p.relative_to(tmp_path / run)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files})
    assert "MERT/pytorch_model.bin" in digests[0] and digests[0] == digests[1]
