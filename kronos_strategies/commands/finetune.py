"""``kronos-bt finetune``: fine-tune (or train from scratch) a Kronos pair on many series, on one process
or under ``torchrun`` with DistributedDataParallel, resumable, into a ``save_pretrained`` folder.

Everything that can be wrong with the input (config keys, values, data, model) is checked before a
process group starts, so a bad job fails with one line on every rank instead of hanging a cluster.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import os
import shutil
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from kronos_strategies.errors import ConfigError

from .options import add_deprecated_alias, add_no_progress

TOP_KEYS = ("name", "data", "model", "train", "finetune", "tokenizer_finetune", "output", "distributed")
MODEL_KEYS = ("name", "revision", "predictor", "tokenizer", "from_scratch")
TRAIN_PARTS = ("predictor", "tokenizer", "both")
DATA_SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass
class FinetuneJob:
    """A validated ``kronos-bt finetune`` job: data sources, model, parts to train, settings, output."""

    name: str
    data: list[Any]
    model: dict[str, Any]
    train: str
    finetune: Any  # FinetuneConfig of the predictor stage (and the tokenizer stage by default)
    tokenizer_finetune: Any  # FinetuneConfig of the tokenizer stage
    output: Path
    timeout: float
    raw: dict[str, Any]


# ----------------------------------------------------------------------------------------------------
# config


def _read_yaml(path: str) -> dict[str, Any]:
    """A YAML mapping from ``path`` (yaml.safe_load)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path!r} does not exist; pass a YAML file or use --data/--base"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping (name:, data:, model:, finetune: ...)")
    return raw


def _finetune_config(raw: Any, where: str, base: Any = None) -> Any:
    """A FinetuneConfig from a mapping, with unknown keys named (the Python API's field names)."""
    from kronos_model.training import FinetuneConfig, FinetuneConfigError
    from kronos_strategies.config import build_dataclass

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"'{where}' must be a mapping of FinetuneConfig fields, got {type(raw).__name__}")
    merged = {**({f.name: getattr(base, f.name) for f in fields(base)} if base is not None else {}), **raw}
    try:
        return build_dataclass(FinetuneConfig, merged, where)
    except ConfigError:
        raise
    except FinetuneConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: a value has the wrong type ({exc})") from None


def load_job(config: str | None, args: argparse.Namespace) -> FinetuneJob:
    """Merge the YAML (optional) with command-line flags and ``--set`` overrides, and validate it all."""
    from kronos_strategies.config import apply_overrides, check_names

    raw: dict[str, Any] = _read_yaml(config) if config else {}
    check_names(raw, TOP_KEYS, "")
    data = raw.get("data") or []
    data = [data] if isinstance(data, dict | str) else list(data)
    data += [{"path": p} for p in args.data or []] + [{"dataset": d} for d in args.dataset or []]
    raw["data"] = data
    raw["model"] = {"name": args.base} if args.base else (raw.get("model") or {})
    for key, value in (("train", args.train), ("output", args.out)):
        if value is not None:
            raw[key] = value
    raw = apply_overrides(raw, args.set or [])
    if not raw["data"]:
        raise ConfigError("no training data: give data: in the YAML, --data FILE|DIR|GLOB or --dataset NAME")
    if not isinstance(raw["model"], dict):
        raise ConfigError("'model' must be a mapping: {name: DIR|HUB_ID} or {from_scratch: {...}}")
    check_names(raw["model"], MODEL_KEYS, "model")
    train = raw.get("train", "predictor")
    if train not in TRAIN_PARTS:
        raise ConfigError(f"'train' must be one of {list(TRAIN_PARTS)}, got {train!r}")
    if raw["model"].get("from_scratch") is not None and train != "both":
        raise ConfigError(
            "model.from_scratch trains new modules: set train: both (a random tokenizer is useless)"
        )
    cfg = _finetune_config(raw.get("finetune"), "finetune")
    name = str(raw.get("name") or "finetune")
    output = Path(raw.get("output") or Path("runs") / "finetune" / name)
    cfg = replace(
        cfg,
        checkpoint_dir=cfg.checkpoint_dir or str(output / "checkpoints"),
        resume=cfg.resume or args.resume,
        verbose=cfg.verbose and not args.no_progress,
    )
    tok_cfg = _finetune_config(raw.get("tokenizer_finetune"), "tokenizer_finetune", base=cfg)
    for label, stage in (("finetune", cfg), ("tokenizer_finetune", tok_cfg)):
        try:
            stage.micro_batches(int(os.environ.get("WORLD_SIZE", "1")))
        except ValueError as exc:
            raise ConfigError(f"{label}: {exc}") from None
    dist = raw.get("distributed") or {}
    check_names(dist, ("timeout",), "distributed")
    timeout = float(dist.get("timeout", 300))
    if timeout <= 0:
        raise ConfigError(f"'distributed.timeout' must be > 0 seconds, got {timeout}")
    return FinetuneJob(name, raw["data"], raw["model"], train, cfg, tok_cfg, output, timeout, raw)


# ----------------------------------------------------------------------------------------------------
# data (the backtests' readers: read_ohlcv, built-in data sets, the cached ccxt download)


def _expand(path: str) -> list[Path]:
    """Files named by a file path, a folder (its CSV/Parquet files) or a glob pattern."""
    p = Path(path)
    if p.is_dir():
        found = sorted(f for f in p.iterdir() if f.suffix.lower() in DATA_SUFFIXES)
    elif any(ch in path for ch in "*?["):
        found = sorted(Path(f) for f in glob.glob(path, recursive=True) if Path(f).is_file())
    else:
        found = [p]
    if not found:
        raise ConfigError(f"data path {path!r} matches no CSV/Parquet file; check the folder or pattern")
    return found


def _ccxt_frame(entry: Any, until: str | None) -> pd.DataFrame:
    """Closed candles [since, until) of one ccxt source, through the backtests' cached download."""
    from kronos_strategies.exchange import (
        ExchangeClient,
        candle_cache_dir,
        download_history,
        epoch_ms,
        make_exchange,
    )

    if not entry.symbol or not entry.since:
        raise ConfigError("a 'source: ccxt' data entry needs symbol: and since: (and optionally until:)")
    exchange = make_exchange(entry.exchange, url=entry.url)
    client = ExchangeClient(exchange, str(entry.symbol))
    end = None if until is None else epoch_ms(str(until))
    cache = candle_cache_dir(entry.cache_dir, entry.url)
    start = epoch_ms(str(entry.since))
    if cache is None:
        return download_history(client, entry.timeframe, start, end, cache_dir=None)
    cache.mkdir(parents=True, exist_ok=True)
    with open(
        cache / ".finetune.lock", "w"
    ) as lock:  # torchrun ranks on one machine: one downloads, the rest read
        fcntl.flock(lock, fcntl.LOCK_EX)
        return download_history(client, entry.timeframe, start, end, cache_dir=cache)


def load_frames(job: FinetuneJob) -> dict[str, pd.DataFrame]:
    """Validated OHLCV frames by series name from every data entry (files, folders, globs, data sets, ccxt)."""
    from kronos_strategies.config import DataConfig, build_dataclass
    from kronos_strategies.feeds import load_dataset, read_ohlcv

    frames: dict[str, pd.DataFrame] = {}

    def add(name: str, frame: pd.DataFrame) -> None:
        key, n = name, 2
        while key in frames:
            key, n = f"{name}#{n}", n + 1
        frames[key] = frame

    for i, item in enumerate(job.data):
        where = f"data[{i}]"
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict):
            raise ConfigError(f"'{where}' must be a path or a mapping (path:/dataset:/source: ccxt)")
        item = dict(item)
        until = item.pop("until", None)
        entry = build_dataclass(DataConfig, item, where)
        given = [k for k in ("path", "dataset", "source") if getattr(entry, k)]
        if len(given) != 1:
            raise ConfigError(
                f"'{where}' needs exactly one of path:, dataset: or source: ccxt, got {given or 'none'}"
            )
        if entry.dataset:
            frame = read_ohlcv(load_dataset(entry.dataset), tz=entry.tz, name=entry.dataset)
            add(entry.name or entry.dataset, frame)
        elif entry.source:
            if entry.source != "ccxt":
                raise ConfigError(f"'{where}.source' must be 'ccxt', got {entry.source!r}")
            label = entry.name or f"{entry.symbol} {entry.timeframe}"
            add(label, read_ohlcv(_ccxt_frame(entry, until), tz=entry.tz, name=label))
        else:
            files = _expand(str(entry.path))
            for f in files:
                label = entry.name if entry.name and len(files) == 1 else f.stem
                add(label, read_ohlcv(f, timestamp_column=entry.timestamp_column, tz=entry.tz, name=label))
    return frames


def check_windows(job: FinetuneJob, frames: dict[str, pd.DataFrame]) -> None:
    """Cut every stage's windows once now, so too-short data fails before any process group starts."""
    from kronos_model.training import load_series, split_windows

    series = load_series(frames)
    if job.train in ("tokenizer", "both"):
        c = job.tokenizer_finetune
        split_windows(series, c.lookback + c.horizon, c)
    if job.train in ("predictor", "both"):
        c = job.finetune
        split_windows(series, c.lookback + c.horizon + 1, c)


# ----------------------------------------------------------------------------------------------------
# model


def load_pair(job: FinetuneJob) -> tuple[Any, Any]:
    """(predictor, tokenizer) to start from: a base checkpoint (bundled, directory, hub id) or fresh configs."""
    from kronos_model import Kronos, KronosPredictor, KronosTokenizer
    from kronos_model.training import build_predictor, build_tokenizer

    m, seed = job.model, job.finetune.seed
    scratch = m.get("from_scratch")
    if scratch is not None:
        if not isinstance(scratch, dict) or set(scratch) - {"tokenizer", "predictor"}:
            raise ConfigError("model.from_scratch must be {tokenizer: {...config}, predictor: {...config}}")
        try:
            tok = build_tokenizer(KronosTokenizer.config_class(**(scratch.get("tokenizer") or {})), seed=seed)
            pred = build_predictor(Kronos.config_class(**(scratch.get("predictor") or {})), seed=seed)
        except TypeError as exc:
            raise ConfigError(f"model.from_scratch: {exc}") from None
        return pred, tok
    if m.get("predictor") or m.get("tokenizer"):
        if not (m.get("predictor") and m.get("tokenizer")):
            raise ConfigError("model.predictor and model.tokenizer go together (two directories)")
        return Kronos.from_pretrained(m["predictor"]), KronosTokenizer.from_pretrained(m["tokenizer"])
    wrapper = KronosPredictor.from_pretrained(m.get("name"), revision=m.get("revision"), device="cpu")
    return wrapper.model, wrapper.tokenizer


# ----------------------------------------------------------------------------------------------------
# output


def loss_table(results: list[Any]) -> str:
    """Per stage and epoch: step, mean training loss, validation loss, learning rate, seconds."""
    head = f"{'stage':<10}{'epoch':>6}{'step':>7}{'train_loss':>12}{'val_loss':>12}{'lr':>11}{'seconds':>9}"
    lines = [head]
    for r in results:
        for h in r.history:
            val = "-" if h["val_loss"] is None else f"{h['val_loss']:.5f}"
            best = " *" if h["epoch"] == r.best_epoch else ""
            lines.append(
                f"{r.kind:<10}{h['epoch']:>6}{h['step']:>7}{h['train_loss']:>12.5f}{val:>12}"
                f"{h['lr']:>11.2e}{h['seconds']:>9.1f}{best}"
            )
    lines.append("* best epoch (its weights are the ones saved)")
    return "\n".join(lines)


def model_card(job: FinetuneJob, results: list[Any]) -> str:
    """A README.md stub for the output folder: base, data, split, losses, and how to load it."""
    if job.model.get("from_scratch") is not None:
        base = "trained from scratch"
    else:
        base = f"fine-tuned from `{job.model.get('name') or job.model.get('predictor') or 'kronos-bt/nano'}`"
    record = results[-1].record
    rows = "\n".join(
        f"| {d['name']} | {d['bars']} | {d.get('train_first_bar', '-')} .. {d.get('train_last_bar', '-')} "
        f"| {d.get('val_first_bar', '-')} .. {d.get('val_last_bar', '-')} |"
        for d in record["data"]
    )
    return (
        "---\nlibrary_name: kronos-bt\ntags: [time-series, forecasting, finance, kronos]\n---\n\n"
        f"# {job.name}\n\nKronos tokenizer + predictor {base} with `kronos-bt finetune` "
        f"(parts trained: {job.train}; {record['world_size']} process(es); seed {record['seed']}).\n\n"
        f"## Data\n\nValidation cut-off: {record['cutoff']}; data fingerprint "
        f"`{record['data_fingerprint'][:16]}`.\n\n"
        f"| series | bars | training windows span | validation windows span |\n|---|---|---|---|\n{rows}\n\n"
        f"## Losses\n\n```\n{loss_table(results)}\n```\n\n"
        "Settings and per-epoch metrics: `<part>/training_record.json` of each trained part.\n\n"
        f"## Use\n\n```yaml\nmodel: {{name: {job.output}}}\n```\n\n"
        f'or `KronosPredictor.from_pretrained("{job.output}")`. A validation loss says nothing about '
        "trading results: backtest the model (`kronos-bt run`) on bars after the cut-off.\n"
    )


def write_output(job: FinetuneJob, pair: tuple[Any, Any], results: list[Any]) -> None:
    """``save_pretrained`` both modules (each trained one with its training record), the card and the job."""
    out = job.output
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = pair
    by_kind = {r.kind: r for r in results}
    for kind, module in (("tokenizer", tokenizer), ("predictor", model)):
        shutil.rmtree(out / kind, ignore_errors=True)
        if kind in by_kind:
            by_kind[kind].save(out / kind)
        else:
            module.save_pretrained(out / kind)
    (out / "README.md").write_text(model_card(job, results))
    (out / "finetune.yaml").write_text(yaml.safe_dump(job.raw, sort_keys=False))


# ----------------------------------------------------------------------------------------------------
# command


def run_job(job: FinetuneJob, *, overwrite: bool = False) -> list[Any]:
    """Validate data and model, then (joining the torchrun job, if any) train, and write on rank 0."""
    from kronos_model.training import distributed, finetune_predictor, finetune_tokenizer

    if (job.output / "predictor").exists() and not (overwrite or job.finetune.resume):
        raise ConfigError(
            f"output {job.output} already holds a model; pass --overwrite, --resume, or another --output"
        )
    frames = load_frames(job)
    check_windows(job, frames)
    model, tokenizer = load_pair(job)
    ctx = distributed.init(job.finetune.device, job.timeout)
    try:
        results = []
        if job.train in ("tokenizer", "both"):
            results.append(finetune_tokenizer(tokenizer, frames, job.tokenizer_finetune))
        if job.train in ("predictor", "both"):
            results.append(finetune_predictor(model, tokenizer, frames, job.finetune))
        if ctx.is_main:
            write_output(job, (model, tokenizer), results)
        distributed.barrier(ctx)
    finally:
        distributed.shutdown()
    if ctx.is_main:
        print(loss_table(results))
        print(f"wrote {job.output}/: predictor/, tokenizer/, README.md, finetune.yaml")
    return results


def handler(args: argparse.Namespace) -> int:
    """Run ``kronos-bt finetune``."""
    run_job(load_job(args.config, args), overwrite=args.overwrite)
    return 0


def register(subparsers: Any) -> None:
    """Add ``finetune`` to the CLI."""
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune a Kronos tokenizer/predictor on OHLCV series (one process or under torchrun)",
        description=(
            "Fine-tune Kronos on CSV/Parquet files, folders, globs, built-in data sets or cached ccxt "
            "downloads. Run it as is for one process, or as `torchrun --nproc_per_node N -m "
            "kronos_strategies.cli finetune ...` for DistributedDataParallel (gloo on CPU, nccl on GPU)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("config", nargs="?", help="YAML job file (name, data, model, train, finetune, output)")
    p.add_argument("--data", action="append", help="CSV/Parquet file, folder or glob (repeatable)")
    p.add_argument("--dataset", action="append", help="built-in data set, e.g. sp500 (repeatable)")
    p.add_argument(
        "--base", help="base checkpoint: a save_pretrained folder or a hub id (default: bundled nano)"
    )
    p.add_argument("--train", choices=TRAIN_PARTS, help="which part to train (default: predictor)")
    p.add_argument("--out", help="output directory (default: the job's output:, else runs/finetune/<name>)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. finetune.lr=1e-4")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint of the output")
    p.add_argument("--overwrite", action="store_true", help="replace a model already in the output folder")
    add_no_progress(p)
    add_deprecated_alias(p, "--output", "--out")
    p.set_defaults(func=handler)
