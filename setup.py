"""Which packages the distribution holds (everything else is in pyproject.toml): every package under
MU-LLaMA/llama, found rather than listed, and MU-LLaMA/data installed as llama.data (the project's
layout keeps the datasets beside the model package, not inside it)."""

from setuptools import find_packages, setup

FOLDERS = {"llama": "MU-LLaMA/llama", "llama.data": "MU-LLaMA/data"}

setup(
    packages=[f"{name}.{sub}" if sub else name for name, folder in FOLDERS.items()
              for sub in ["", *find_packages(folder)]],
    package_dir=FOLDERS,
)
