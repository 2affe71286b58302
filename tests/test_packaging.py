"""The distribution holds every package of the source tree: a wheel built offline from the packaging files and
the package folder has every module, and installed (not editable) it imports llama.training and
llama.decoders from itself."""

import os
import shutil
import subprocess
import sys
import zipfile

from conftest import ROOT

# source folder -> the package it is installed as (setup.py)
SOURCES = {ROOT / "MU-LLaMA" / "llama": "llama"}


def source_modules() -> set[str]:
    """Every module of the source tree, as its path inside the wheel."""
    return {f"{package}/{path.relative_to(folder).as_posix()}" for folder, package in SOURCES.items()
            for path in folder.rglob("*.py") if "__pycache__" not in path.parts}


def test_wheel_holds_every_package_and_installs_without_the_source_tree(tmp_path):
    source = tmp_path / "source"  # only what packaging reads: the build writes nothing into the checkout
    source.mkdir()
    for name in ("pyproject.toml", "setup.py"):
        shutil.copy(ROOT / name, source / name)
    for folder in SOURCES:
        shutil.copytree(folder, source / "MU-LLaMA" / folder.name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(tmp_path / "wheel"),
                    str(source)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "wheel").glob("mu_llama-*.whl")
    modules = source_modules()
    assert {"llama/training/loop.py", "llama/decoders/notes.py", "llama/data/synthetic.py"} <= modules
    assert modules <= set(zipfile.ZipFile(wheel).namelist())

    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], check=True,
                   capture_output=True)
    code = "import llama.training, llama.decoders, llama.data.caches; print(llama.training.__file__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(site)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(site / "llama" / "training" / "__init__.py")  # the installed copy, not the tree
