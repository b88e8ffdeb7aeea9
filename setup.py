"""Package layout that pyproject.toml cannot say: the top-level ``strategies/`` folder installs as
``kronos_strategies.builtin`` (never as a top-level ``strategies`` package, which a user's own would clash with).
Data folders (the bundled checkpoint, the dashboard's templates) are listed as namespace packages so their files
ship as package data without build warnings. Everything else about the package is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

setup(
    packages=find_namespace_packages(
        include=["kronos_model*", "kronos_strategies*"], exclude=["*.__pycache__"]
    )
    + ["kronos_strategies.builtin"],
    package_dir={"kronos_strategies.builtin": "strategies"},
)
