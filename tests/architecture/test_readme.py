"""The README's Python examples: they import only from the package roots (or a documented submodule), and the
ones that run in seconds are executed here as written."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
# submodules the README documents by name; everything else comes from `kronos_model` / `kronos_strategies`
DOCUMENTED = {"kronos_model", "kronos_strategies", "kronos_model.training", "kronos_strategies.walkforward",
              "kronos_strategies.sweep"}  # fmt: skip


def python_blocks() -> list[tuple[int, str]]:
    """(first line number, code) of every ```python block in the README."""
    text = README.read_text()
    return [
        (text[: m.start()].count("\n") + 2, m.group(1))
        for m in re.finditer(r"```python\n(.*?)```", text, re.S)
    ]


def test_readme_has_examples():
    assert len(python_blocks()) >= 5


@pytest.mark.parametrize("line,code", python_blocks(), ids=lambda v: f"line{v}" if isinstance(v, int) else "")
def test_examples_import_from_the_package_roots(line, code):
    for node in ast.walk(ast.parse(code)):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            if name.startswith("kronos_"):
                assert name in DOCUMENTED, f"README line {line}: import {name} (use the package root)"


def _block(first_line_contains: str) -> str:
    (code,) = [code for _, code in python_blocks() if first_line_contains in code]
    return code


@pytest.fixture
def example_frames(sp500):
    """The names the model example uses: OHLCV frames with a DatetimeIndex and their timestamps."""
    df = sp500.loc["2014-01-01":"2014-12-31"].iloc[-200:]
    future = pd.bdate_range(df.index[-1] + pd.offsets.BDay(), periods=24)
    return {"df": df, "x_timestamp": pd.Series(df.index), "y_timestamp": pd.Series(future),
            "df1": df.iloc[-120:], "df2": df.iloc[-90:], "df3": df}  # fmt: skip


@pytest.mark.slow  # the model API itself is exercised in tests/model; the signal example below stays fast
def test_model_example_runs_as_written(example_frames):
    names = dict(example_frames)
    exec(compile(_block("fc = predictor.forecast("), "README", "exec"), names)  # noqa: S102
    fc, fcs = names["fc"], names["fcs"]
    assert fc.samples.shape == (32, 24, 6) and np.isfinite(fc.samples).all()
    assert len(names["mean_df"]) == 24 and len(fcs) == 3
    assert all(f.samples.shape == (20, 24, 6) for f in fcs)


def test_signal_subclass_example_defines_a_working_hook():
    names: dict = {}
    exec(compile(_block("class OneBarAhead"), "README", "exec"), names)  # noqa: S102
    from kronos_strategies import KronosSignal

    assert issubclass(names["OneBarAhead"], KronosSignal) and "compute_signal" in vars(names["OneBarAhead"])
