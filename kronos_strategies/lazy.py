"""Lazy package attributes (PEP 562): a package names its public objects and their modules, and each module
is imported the first time one of its names is touched, so importing the package stays cheap; a shim left
where a module used to be resolves the old names from their new home with a DeprecationWarning."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr", "moved_getattr"]


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` resolving ``name`` from ``exports[name]`` (a relative module)."""

    def __getattr__(name: str) -> Any:
        module_name = exports.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module_name, package), name)
        setattr(importlib.import_module(package), name, value)  # later look-ups skip this function
        return value

    return __getattr__


def moved_getattr(old: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for a shim left at ``old``: each name in ``exports`` resolves from its new
    (absolute) module, ``"module:new_name"`` when it was renamed, with a DeprecationWarning naming the new
    path; the old path goes in 0.3."""

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        module_name, _, new_name = target.partition(":")
        new_name = new_name or name
        warnings.warn(
            f"{old}.{name} is now {module_name}.{new_name}; the old path goes in 0.3",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module_name), new_name)

    return __getattr__
