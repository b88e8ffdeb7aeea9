"""The repository's strategies/ folder installs as ``kronos_strategies.builtin``, never as a top-level
``strategies`` package: short names resolve the same from a clone (editable install) and from a wheel, and a
user's own ``strategies`` package neither shadows nor is shadowed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

RESOLVE = (
    "import sys\n"
    "from kronos_strategies.strategy import load_object\n"
    "cls = load_object('threshold')\n"
    "print(cls.__module__, sys.modules[cls.__module__].__file__)\n"
    "try:\n"
    "    import strategies\n"
    "    print('strategies', strategies.__file__)\n"
    "except ModuleNotFoundError:\n"
    "    print('strategies', None)\n"
)


def _run(code: str, cwd: Path, python_args: tuple[str, ...] = ()) -> list[str]:
    out = subprocess.run(
        [sys.executable, *python_args, "-c", code], cwd=cwd, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_short_names_resolve_to_the_builtin_package_from_the_install(tmp_path):
    module, path, _, user_pkg = _run(RESOLVE, cwd=tmp_path)
    assert module == "kronos_strategies.builtin.threshold"
    assert Path(path) == ROOT / "strategies" / "threshold.py"
    assert user_pkg == "None"  # nothing named `strategies` is installed


def test_a_users_own_strategies_package_does_not_clash(tmp_path):
    user = tmp_path / "strategies"
    user.mkdir()
    (user / "__init__.py").write_text("")
    (user / "mine.py").write_text("class Mine:\n    pass\n")
    code = RESOLVE + "print(load_object('strategies.mine:Mine').__module__)\n"
    module, _, _, user_pkg, mine = _run(code, cwd=tmp_path)
    assert module == "kronos_strategies.builtin.threshold"
    assert Path(user_pkg) == user / "__init__.py"
    assert mine == "strategies.mine"


def test_old_spelling_still_resolves_with_a_deprecation_warning(tmp_path):
    code = (
        "import warnings\n"
        "from kronos_strategies.strategy import load_object\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    cls = load_object('strategies.threshold:ThresholdStrategy')\n"
        "print(cls.__module__, seen[0].category.__name__)\n"
    )
    assert _run(code, cwd=tmp_path) == ["kronos_strategies.builtin.threshold", "DeprecationWarning"]


@pytest.mark.slow
def test_wheel_installs_strategies_under_the_package(tmp_path):
    dist, src = tmp_path / "dist", tmp_path / "src"
    # build from a copy of the tracked files, so the build leaves nothing in the checkout
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in tracked.splitlines():
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, src],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("kronos_bt-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "kronos_strategies/builtin/threshold.py" in names
    assert not [n for n in names if n.startswith("strategies/")]
    assert "kronos_model/templates/model_card.md" in names  # the model card template is package data
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # -S: no site-packages processing, so the editable install's finder is not active; the wheel comes first
    purelib = sysconfig.get_paths()["purelib"]
    code = f"import sys; sys.path[:0] = [{str(site)!r}, {purelib!r}]\n" + RESOLVE
    module, path, _, user_pkg = _run(code, cwd=tmp_path, python_args=("-S",))
    assert module == "kronos_strategies.builtin.threshold"
    assert Path(path) == site / "kronos_strategies" / "builtin" / "threshold.py"
    assert user_pkg == "None"
