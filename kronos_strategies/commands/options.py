"""Option spellings every command shares, and hidden aliases that keep old spellings working for one release.

The vocabulary (README, "One vocabulary"): ``--pred-len`` bars forecast, ``--sample-count`` sample paths,
``--temperature`` (``T`` in Python and YAML), ``--out DIR`` a directory, ``--no-progress`` no progress bars.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ["DeprecatedOptionWarning", "add_deprecated_alias", "add_no_progress"]


class DeprecatedOptionWarning(DeprecationWarning):
    """An old option spelling was used; it still works for this release."""


# Shown on the command line too (Python hides plain DeprecationWarnings outside __main__).
warnings.filterwarnings("default", category=DeprecatedOptionWarning)


class _DeprecatedAlias(argparse.Action):
    """Store like the new option, after a warning naming the new spelling."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str = "", **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:  # fmt: skip
        warnings.warn_explicit(  # reported against the command, not argparse's internals
            f"{option_string} is deprecated and will be removed; use {self.new}",
            DeprecatedOptionWarning,
            filename=parser.prog,
            lineno=0,
        )
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str, *, flag: bool = False,
                         dest: str | None = None, **kwargs: Any) -> None:  # fmt: skip
    """Accept ``old`` as a hidden spelling of ``new`` (same destination unless ``dest``), with a warning."""
    dest = dest or next(a.dest for a in parser._actions if new in a.option_strings)
    extra: dict[str, Any] = {"nargs": 0, "const": True} if flag else {}
    parser.add_argument(
        old, dest=dest, action=_DeprecatedAlias, new=new, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
        **extra, **kwargs,
    )  # fmt: skip


def add_no_progress(parser: argparse.ArgumentParser, help: str = "no progress bars") -> None:
    """``--no-progress`` (``args.no_progress``), with ``--quiet`` kept as a hidden deprecated alias."""
    parser.add_argument("--no-progress", action="store_true", help=help)
    add_deprecated_alias(parser, "--quiet", "--no-progress", flag=True)
