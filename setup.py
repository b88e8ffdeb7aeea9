"""Package layout that pyproject.toml cannot say: the top-level ``strategies/`` folder installs as
``kronos_strategies.builtin`` (never as a top-level ``strategies`` package, which a user's own would clash with).
Everything else about the package is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["kronos_model*", "kronos_strategies*"]) + ["kronos_strategies.builtin"],
    package_dir={"kronos_strategies.builtin": "strategies"},
)
