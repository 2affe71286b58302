"""Which packages the distribution holds (everything else is in pyproject.toml): every package under
MU-LLaMA/llama, found rather than listed."""

from setuptools import find_packages, setup

setup(packages=find_packages("MU-LLaMA", include=["llama", "llama.*"]), package_dir={"": "MU-LLaMA"})
