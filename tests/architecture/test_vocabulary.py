"""One vocabulary: every sub-command's parser spells the shared options the same way, and old spellings are
hidden aliases that still work with a DeprecationWarning (README, "One vocabulary")."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from kronos_strategies.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
# old or competing spelling -> the one the CLI shows
RENAMED = {"--quiet": "--no-progress", "--output": "--out", "--samples": "--sample-count",
           "--horizon": "--pred-len", "--num-samples": "--sample-count", "--t": "--temperature",
           "--temp": "--temperature", "--progress": "--no-progress", "--verbose": "--no-progress",
           "--output-dir": "--out", "--out-dir": "--out"}  # fmt: skip
WRITERS = ("run", "forecast", "evaluate", "finetune", "paper", "sweep")  # commands that write files
WITH_PROGRESS = ("run", "evaluate", "finetune", "sweep")  # commands that draw progress bars


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Every sub-command's parser, by name, walked out of the real ``kronos-bt`` parser."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found[" ".join((*path, name))] = sub
                    walk(sub, (*path, name))

    walk(build_parser(), ())
    return found


def visible(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Options a user sees in ``--help``, by spelling."""
    return {o: a for a in parser._actions if a.help != argparse.SUPPRESS for o in a.option_strings}


def hidden(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {o: a for a in parser._actions if a.help == argparse.SUPPRESS for o in a.option_strings}


def test_all_commands_are_walked():
    assert set(WRITERS) | {"dashboard", "emulator"} <= set(subcommands())


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_shown_options_use_the_one_spelling(name):
    options = visible(subcommands()[name])
    for option in options:
        assert option == option.lower() and "_" not in option, f"kronos-bt {name}: {option} (use dashes)"
        assert option not in RENAMED, (
            f"kronos-bt {name} shows {option}; the vocabulary says {RENAMED[option]}"
        )


@pytest.mark.parametrize("name", WRITERS)
def test_out_is_always_a_directory(name):
    out = visible(subcommands()[name]).get("--out")
    assert out is not None, f"kronos-bt {name} has no --out"
    assert "directory" in out.help, f"kronos-bt {name} --out help does not say it is a directory: {out.help}"


@pytest.mark.parametrize("name", WITH_PROGRESS)
def test_progress_is_switched_off_with_no_progress(name):
    parser = subcommands()[name]
    assert "--no-progress" in visible(parser) and "--quiet" in hidden(parser)


@pytest.mark.parametrize(
    "argv,dest,value",
    [
        (["evaluate", "--arch", "sp500", "--horizon", "3"], "pred_len", 3),
        (["evaluate", "--arch", "sp500", "--samples", "7"], "sample_count", 7),
        (["evaluate", "--arch", "sp500", "--quiet"], "no_progress", True),
        (["finetune", "--quiet"], "no_progress", True),
        (["finetune", "--output", "somewhere"], "out", "somewhere"),
        (["run", "x.yaml", "--quiet"], "no_progress", True),
        (["sweep", "x.yaml", "--quiet"], "no_progress", True),
        (["paper", "report", "j.sqlite", "--output", "j.html"], "output", "j.html"),
    ],
)
def test_old_spellings_still_work_with_a_deprecation_warning(argv, dest, value):
    with pytest.warns(DeprecationWarning, match="deprecated.*use --"):
        args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value


def test_new_spellings_parse_without_warnings(recwarn):
    parser = build_parser()
    args = parser.parse_args(["evaluate", "--arch", "sp500", "--pred-len", "3", "--sample-count", "7",
                              "--no-progress", "--temperature", "0.5"])  # fmt: skip
    assert (args.pred_len, args.sample_count, args.no_progress, args.temperature) == (3, 7, True, 0.5)
    args = parser.parse_args(["forecast", "bars.csv", "--pred-len", "4", "--sample-count", "5"])
    assert (args.pred_len, args.sample_count) == (4, 5)
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_sampling_options_match_the_yaml_keys():
    """CLI ``--pred-len``/``--sample-count``/``--temperature`` are YAML ``pred_len``/``sample_count``/``T``."""
    from kronos_strategies import load_config

    keys = {
        f.name for f in dataclasses.fields(load_config(ROOT / "backtests" / "sp500_threshold.yaml").indicator)
    }
    assert {"pred_len", "horizon", "sample_count", "T", "top_k", "top_p", "seed"} <= keys
    assert not keys & {"samples", "temperature", "num_samples"}
    forecast = visible(subcommands()["forecast"])
    for yaml_key, option in (("pred_len", "--pred-len"), ("sample_count", "--sample-count"),
                             ("T", "--temperature"), ("top_k", "--top-k"), ("top_p", "--top-p")):  # fmt: skip
        assert forecast[option].dest in (yaml_key, "temperature"), option


def test_forecast_out_is_a_directory_and_a_csv_name_still_works():
    from kronos_strategies.commands.backtest import _forecast_csv

    assert _forecast_csv("data/bars.csv", "fc") == Path("fc") / "forecast.csv"
    assert _forecast_csv("data/bars.csv", None) == Path("data/bars_forecast.csv")
    with pytest.warns(DeprecationWarning, match="--out is a directory now"):
        assert _forecast_csv("data/bars.csv", "old/fc.csv") == Path("old/fc.csv")
