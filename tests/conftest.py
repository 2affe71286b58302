"""Shared fixtures: tiny random LLaMAs written in the real on-disk formats."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# --dtype auto picks bf16 on CPUs with bf16 matrix units: the suite treats every CPU as one without them, so that
# its outcome does not depend on the CPU that runs it (tests/test_precision.py runs the bf16 branch on purpose;
# MU_LLAMA_CPU_BF16=1 pytest runs the whole suite as a CPU with bf16 units would: it must pass too).
os.environ.setdefault("MU_LLAMA_CPU_BF16", "0")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two test processes share the CI's 2 cores (pyproject: -n 2): one compute thread each, inherited by the
    # scripts tests start. Two threads each would oversubscribe the cores, and OpenMP's spinning waits then
    # slow every parallel region many times over.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")

import fcntl  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from llama.testing.tiny import sentencepiece_model_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def run_here(main, argv, capsys) -> tuple[int, str, str]:
    """A script's `main` as its command line runs it (llama.cli.run_main: one-line errors, exit status), but in
    this process, its imports paid once: (exit status, stdout, stderr)."""
    from llama.cli import run_main

    try:
        run_main(main, [str(a) for a in argv])
        status = 0
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as an HF folder (converted from the package's GGUF by the installer;
    converted here if the installer has not run)."""
    from llama.assets import prepare_smollm2

    return prepare_smollm2()


@pytest.fixture(scope="session")
def sentencepiece_model(tmp_path_factory) -> Path:
    """The real 32k SentencePiece model shipped by mistral-common, saved as `tokenizer.model`."""
    folder = tmp_path_factory.mktemp("spm")
    target = folder / "tokenizer.model"
    target.write_bytes(sentencepiece_model_file().read_bytes())
    return target


@pytest.fixture(scope="session")
def browser():
    """Headless system Chromium driven by its system chromedriver, shared by the web demo's tests;
    installed with apt when missing and possible (root on Debian, as in CI). Missing and not
    installable is a failure, not a skip."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        done = subprocess.run(["bash", str(ROOT / "scripts" / "install_browser.sh")], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"no browser for the web demo's test: {done.stderr.strip()}")
    from screenshot_demo import open_browser

    driver = open_browser()
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """scripts/make_tiny_models.py with its defaults (the tiny LLaMA, MERT, synthetic music and feature cache that
    the learning tests and the documented pipeline train on), built once per test run: the test processes share
    one folder, the first to ask builds it and the other waits. Read-only for the tests."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # one folder per run, not per process
    folder = shared / "tiny-models"
    with open(shared / "tiny-models.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if not (folder / "complete").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed half-way
            start = time.perf_counter()
            done = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_models.py"), "--out", str(folder)],
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stderr[-4000:]
            (folder / "complete").write_text(f"built in {time.perf_counter() - start:.0f} s\n")
    return folder


# The longest test files, longest first (measured in one run of the suite; README, Set up). With two test processes
# each takes the next file when it finishes one (pyproject: --dist loadfile --no-loadscope-reorder), so starting the
# long ones first keeps both busy until the end instead of leaving one alone with a long file.
LONGEST_FIRST = ["test_learning.py", "test_train.py", "test_demo_mumu.py", "test_mumu_training.py", "test_demo.py",
                 "test_pipeline.py", "test_musicqa.py", "test_mumu.py", "test_cli.py", "test_evaluate.py",
                 "test_batch_inference.py", "test_real_layouts.py", "test_mu_llama.py", "test_generate_mullama.py",
                 "test_gradio_app.py"]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
