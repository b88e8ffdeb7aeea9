"""Calibration skill on real series (issue 16): raw vs online-calibrated Kronos bands against the bootstrap baseline.

For every ``../shared/data`` series (bars the bundled model never trained on; daily and intraday), the last
``--origins`` bars are forecast one origin per bar (rolling, lookback ``--lookback``, ``--pred-len`` steps,
``--sample-count`` paths) with ``kronos_model.evaluation.evaluate`` and scored, per method, on the same
windows: coverage of the central 80 % band and CRPS (return units), means over horizons 1..pred_len.
``calibrated`` is Kronos with its bands calibrated online (``kronos_model.calibration``, ACI defaults); it
includes the warm-up origins (the raw band) at the start of each series.

    python benchmarks/bench_calibration.py [--origins 1000] [--series spy_1d,btcusdt_binance_1h] [--no-anchor]

Prints one row per series and writes ``--out`` (JSON, default benchmarks/results/calibration.json). Skips
(exit 0, with the reason) when ``../shared/data`` is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kronos_strategies.forecasting import ANCHOR_DEFAULT  # noqa: E402  (the project's default)

SHARED = ROOT.parent / "shared" / "data"
DAILY = ("spy_1d", "aapl_1d", "ibm_1d", "bac_1d", "eem_1d", "nvda_1d", "btcusd_coinbase_1d")
INTRADAY = ("btcusdt_binance_1h", "ethusdt_binance_1h", "sse600977_5m")


def _row(name: str, result: object, seconds: float) -> dict[str, object]:
    table = result.calibration_table()  # type: ignore[attr-defined]
    by_h = result.coverage_by_horizon()  # type: ignore[attr-defined]
    return {
        "series": name,
        "origins": len(result.origins),  # type: ignore[attr-defined]
        "first": str(result.origins[0]),  # type: ignore[attr-defined]
        "last": str(result.origins[-1]),  # type: ignore[attr-defined]
        **{
            f"{k}_{col}": float(table.loc[k, col])
            for k in table.index
            for col in ("coverage", "crps", "width")
        },
        "coverage_by_horizon": {k: [float(v) for v in row] for k, row in by_h.iterrows()},
        "seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--series", default=",".join(DAILY + INTRADAY), help="file stems in ../shared/data")
    parser.add_argument("--origins", type=int, default=1000, help="last N bars forecast (one origin per bar)")
    parser.add_argument("--lookback", type=int, default=256)
    parser.add_argument("--pred-len", type=int, default=5)
    parser.add_argument("--sample-count", type=int, default=20)
    parser.add_argument("--anchor", action=argparse.BooleanOptionalAction, default=ANCHOR_DEFAULT)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a shared 2-core box: 1)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "calibration.json"))
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} (real OHLCV samples) is not present")
        return 0

    import torch

    from kronos_model import KronosPredictor
    from kronos_model.evaluation import evaluate
    from kronos_strategies.feeds import read_ohlcv

    torch.set_num_threads(args.threads)
    predictor = KronosPredictor.from_pretrained()
    rows = []
    header = (f"{'series':<22}{'origins':>8}{'cov raw':>9}{'cov cal':>9}{'cov boot':>9}"
              f"{'CRPS raw':>10}{'CRPS cal':>10}{'CRPS boot':>10}  cal<=boot")  # fmt: skip
    print(f"bundled model {predictor.fingerprint[:12]}, lookback {args.lookback}, pred_len {args.pred_len}, "
          f"{args.sample_count} samples, anchor {args.anchor}; means over horizons")  # fmt: skip
    print(header)
    for name in [s.strip() for s in args.series.split(",") if s.strip()]:
        frame = read_ohlcv(SHARED / f"{name}.csv", name=name)
        frame = frame.iloc[-(args.origins + args.lookback + args.pred_len - 1) :]
        t0 = time.perf_counter()
        result = evaluate(
            frame, predictor, lookback=args.lookback, horizon=args.pred_len, sample_count=args.sample_count,
            stride=1, baselines=("bootstrap",), seed=0, anchor=args.anchor, name=name,
        )  # fmt: skip
        row = _row(name, result, time.perf_counter() - t0)
        rows.append(row)
        better = "yes" if row["calibrated_crps"] <= row["bootstrap_crps"] else "no"
        print(f"{name:<22}{row['origins']:>8}{row['raw_coverage']:>9.3f}{row['calibrated_coverage']:>9.3f}"
              f"{row['bootstrap_coverage']:>9.3f}{row['raw_crps']:>10.5f}{row['calibrated_crps']:>10.5f}"
              f"{row['bootstrap_crps']:>10.5f}  {better}", flush=True)  # fmt: skip
    inside = sum(0.75 <= r["calibrated_coverage"] <= 0.85 for r in rows)
    wins = sum(r["calibrated_crps"] <= r["bootstrap_crps"] for r in rows)
    print(f"calibrated coverage in 0.75..0.85 on {inside}/{len(rows)} series; "
          f"calibrated CRPS <= bootstrap on {wins}/{len(rows)}")  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    out.write_text(json.dumps({"settings": settings, "model": predictor.fingerprint, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
