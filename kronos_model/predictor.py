"""KronosPredictor: pandas OHLCV in, forecasts out (reference ``predict`` / ``predict_batch`` plus ``forecast``).

Each window is validated, normalised with its own lookback statistics, tokenised and decoded by
:func:`kronos_model.generation.generate`; results are de-normalised per window.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import torch

from .batching import pad_windows, seeded_draws
from .data import FEATURE_COLUMNS
from .errors import DataError, SamplingError
from .forecast import Forecast
from .generation import SamplingArgs, generate
from .hub import DEFAULT_MODEL, module_fingerprint
from .kv_cache import kv_bytes
from .reference_api import ReferenceAPI
from .registry import resolve_pair
from .sampling import check_sampling_args
from .series import ForecastWindow, PreparedSeries
from .tokenizer import KronosTokenizer
from .transformer import Kronos

logger = logging.getLogger(__name__)

MIN_HISTORY = 2  # bars; the normalisation needs a spread


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"`` -> cuda, else mps, else cpu (the reference's choice order)."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


class KronosPredictor(ReferenceAPI):
    """Forecast future candles with a Kronos tokenizer + predictor pair.

    Parameters
    ----------
    model, tokenizer : the two modules (e.g. from ``from_pretrained``); put in eval mode here.
    device : "cpu", "cuda", "mps", "auto" or None (auto).
    max_context : predictor window in tokens (512 for Kronos-small/base, 2048 for mini).
    clip : normalised values are clipped to +-clip.
    dtype : optional torch dtype for GPU inference (bfloat16/float16); float32 by default.
    num_threads : CPU threads for torch (None leaves torch's setting).
    max_batch_bytes : batched calls are split so that one chunk's KV cache stays under this many bytes.
    cuda_graph : record each batch shape's cached decode once as a CUDA graph and replay it (None: on for
        CUDA). Same numbers as the eager path for seeded forecasts; see :mod:`kronos_model.cuda_graph`.
    compile : ``torch.compile`` the blocks' elementwise math (:mod:`kronos_model.fused`); off by default
        because fused kernels round differently from the reference's.
    """

    def __init__(
        self,
        model: Kronos,
        tokenizer: KronosTokenizer,
        device: str | None = None,
        max_context: int = 512,
        clip: float = 5,
        *,
        dtype: torch.dtype | str | None = None,
        num_threads: int | None = None,
        max_batch_bytes: int = 4 * 1024**3,
        cuda_graph: bool | None = None,
        compile: bool = False,
    ):
        if model.s1_bits != tokenizer.s1_bits or model.s2_bits != tokenizer.s2_bits:
            raise DataError(
                f"model and tokenizer do not pair: model s1/s2 bits {model.s1_bits}/{model.s2_bits}, "
                f"tokenizer {tokenizer.s1_bits}/{tokenizer.s2_bits}"
            )
        if not isinstance(max_context, int) or max_context < 1:
            raise DataError(f"max_context must be a positive integer, got {max_context!r}")
        self.device = resolve_device(device)
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else (dtype or torch.float32)
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        self.model = model.to(self.device, self.dtype).eval()
        self.tokenizer = tokenizer.to(self.device, self.dtype).eval()
        self.max_context = max_context
        self.clip = clip
        self.max_batch_bytes = max_batch_bytes
        # record each batch shape's decode once and replay it (default on CUDA, where launches dominate)
        self.cuda_graph = self.device.type == "cuda" if cuda_graph is None else bool(cuda_graph)
        self._sampler = None
        if compile:
            from .fused import fuse_elementwise, fused_sampler

            fuse_elementwise(self.model, self.tokenizer)
            self._sampler = fused_sampler()
        self.price_cols = list(FEATURE_COLUMNS[:4])
        self.vol_col, self.amt_col = "volume", "amount"
        self.time_cols = ["minute", "hour", "weekday", "day", "month"]

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | None = None,
        *,
        revision: str | None = None,
        tokenizer_revision: str | None = None,
        device: str | None = "cpu",
        max_context: int | None = None,
        clip: float = 5,
        **kwargs: Any,
    ) -> KronosPredictor:
        """Load a matching tokenizer + predictor pair.

        ``None`` gives the bundled offline model ``kronos-bt/nano``; ``"NeoQuasar/Kronos-small"`` (or -mini,
        -base) pulls the right tokenizer and context length; a local directory with ``tokenizer/`` and
        ``predictor/`` sub-directories also works. ``revision``/``tokenizer_revision`` pin hub commits.
        """
        hub_kwargs = {
            k: kwargs.pop(k)
            for k in ("cache_dir", "local_files_only", "token", "force_download")
            if k in kwargs
        }
        pair = resolve_pair(name_or_path or DEFAULT_MODEL)
        tokenizer = KronosTokenizer.from_pretrained(
            pair.tokenizer, revision=tokenizer_revision or pair.tokenizer_revision, **hub_kwargs
        )
        model = Kronos.from_pretrained(pair.model, revision=revision or pair.model_revision, **hub_kwargs)
        predictor = cls(
            model, tokenizer, device=device, max_context=max_context or pair.max_context, clip=clip, **kwargs
        )
        predictor.name = pair.name
        return predictor

    name: str = "custom"

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of both modules' configs and weights (plus max_context and clip): a cache key."""
        return module_fingerprint(self.tokenizer, self.model) + f"-c{self.max_context}-k{self.clip:g}"

    def refresh_fingerprint(self) -> str:
        """Recompute :attr:`fingerprint` after the weights changed in place (e.g. fine-tuning) and return it."""
        self.__dict__.pop("fingerprint", None)
        return self.fingerprint

    # -- input preparation ----------------------------------------------------------------------
    def _window(
        self, df: pd.DataFrame, x_timestamp: Any, y_timestamp: Any, pred_len: int, name: str
    ) -> ForecastWindow:
        """Prepare one frame as a series and take its whole length as the window."""
        series = PreparedSeries.from_frame(df, x_timestamp, name=name, min_bars=MIN_HISTORY)
        return series.window(len(series), len(series), pred_len, self.clip, y_timestamp)

    def _run(
        self,
        windows: list[ForecastWindow],
        pred_len: int,
        sample_count: int,
        T: float,
        top_k: int,
        top_p: float,
        seed: int | Sequence[int] | None,
        generator: torch.Generator | None,
        use_cache: bool,
        anchor: bool = False,
    ) -> np.ndarray:
        """Generate for one batch of windows -> decoded normalised paths [B, S, P, 6] (float32 numpy)."""
        x, stamps, lengths = pad_windows(windows, pred_len)
        uniforms = None if seed is None else seeded_draws(seed, len(windows), sample_count, pred_len)
        sampling = SamplingArgs(
            T=T, top_k=top_k, top_p=top_p, generator=generator, uniforms=uniforms, sampler=self._sampler
        )
        side: dict = {}
        out = (
            generate(
                self.tokenizer,
                self.model,
                torch.from_numpy(x).to(self.device, self.dtype),
                lengths,
                torch.from_numpy(stamps).to(self.device),
                pred_len,
                self.max_context,
                sample_count,
                sampling,
                clip=self.clip,
                use_cache=use_cache,
                cuda_graph=self.cuda_graph,
                record=side,
            )
            .cpu()
            .numpy()
        )
        if anchor and side["history_recon"] is not None:
            # shift every path by the decoder's error on the last known bar (uses bars <= t only)
            error = x[:, -1] - side["history_recon"].cpu().numpy()
            out = out + error[:, None, None, :]
        return out

    def _generate_all(
        self,
        windows: list[ForecastWindow],
        pred_len: int,
        sample_count: int,
        T: float,
        top_k: int | None,
        top_p: float | None,
        seed: int | Sequence[int] | None,
        generator,
        use_cache: bool,
        batch_size: int | None,
        verbose: bool,
        anchor: bool = False,
    ) -> list[np.ndarray]:
        top_k, top_p = check_sampling_args(T, top_k, top_p, sample_count)
        if not isinstance(pred_len, int | np.integer) or pred_len < 1:
            raise DataError(f"pred_len must be a positive integer, got {pred_len!r}")
        step = min(batch_size or len(windows), self._windows_per_chunk(windows, pred_len, sample_count))
        chunks = range(0, len(windows), step)
        if seed is not None and not isinstance(seed, int | np.integer):
            seed = list(seed)
            if len(seed) != len(windows):
                raise SamplingError(
                    f"got {len(seed)} seeds for {len(windows)} windows; pass one int or one per window"
                )
        if verbose:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc="Kronos forecast", unit="batch")
        paths: list[np.ndarray] = []
        for start in chunks:
            batch = windows[start : start + step]
            batch_seed = seed[start : start + step] if isinstance(seed, list) else seed
            paths.extend(
                self._run(
                    batch,
                    int(pred_len),
                    sample_count,
                    T,
                    top_k,
                    top_p,
                    batch_seed,
                    generator,
                    use_cache,
                    anchor,
                )
            )
        return paths

    def _windows_per_chunk(self, windows: list[ForecastWindow], pred_len: int, sample_count: int) -> int:
        """How many windows fit one chunk under ``max_batch_bytes`` of KV cache (memory linear in chunk size).

        A window's prompt is cached once and read by all its sample rows; each row caches only the
        ``pred_len`` tokens it generates (plus, once a window slides past ``max_context``, nothing: those
        steps recompute).
        """
        cfg = self.model.config
        width = max(len(w.x) for w in windows)
        elem = torch.finfo(self.dtype).bits // 8
        per_window = kv_bytes(cfg.n_layers + 1, width, cfg.d_model, elem, 1, sample_count, pred_len)
        return max(1, int(self.max_batch_bytes // per_window))

    # -- probabilistic API ----------------------------------------------------------------------
    def forecast(
        self,
        df: pd.DataFrame,
        pred_len: int,
        *,
        x_timestamp=None,
        y_timestamp=None,
        sample_count: int = 20,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        anchor: bool = False,
    ) -> Forecast:
        """Sample paths of one window as a :class:`Forecast` (y_timestamp inferred when not given)."""
        return self.forecast_batch(
            [df],
            pred_len,
            x_timestamp_list=None if x_timestamp is None else [x_timestamp],
            y_timestamp_list=None if y_timestamp is None else [y_timestamp],
            sample_count=sample_count,
            T=T,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            generator=generator,
            use_cache=use_cache,
            anchor=anchor,
        )[0]

    def forecast_batch(
        self,
        df_list: Sequence[pd.DataFrame],
        pred_len: int,
        *,
        x_timestamp_list=None,
        y_timestamp_list=None,
        sample_count: int = 20,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        seed: int | Sequence[int] | None = None,
        generator: torch.Generator | None = None,
        batch_size: int | None = 64,
        verbose: bool = False,
        use_cache: bool = True,
        anchor: bool = False,
    ) -> list[Forecast]:
        """Forecasts for many windows (any lengths) in batches of ``batch_size`` windows.

        With ``seed`` (one int for all windows, or one int per window) every window samples from its own
        stream, so its result depends only on its own data, arguments and seed, never on the batch it ran in.
        One shared int gives every window the same random numbers (common random numbers).

        ``anchor=True`` (a kronos-bt addition, off by default) shifts each window's paths, in normalised
        space, by the tokenizer's reconstruction error on the last history bar, so step 1 starts from the
        real last bar rather than from its reconstruction. It uses only bars up to the last history bar.
        """
        n = len(df_list)
        xs = x_timestamp_list if x_timestamp_list is not None else [None] * n
        ys = y_timestamp_list if y_timestamp_list is not None else [None] * n
        if not len(xs) == len(ys) == n:
            raise DataError(
                f"got {n} frames, {len(xs)} x_timestamp entries and {len(ys)} y_timestamp entries"
            )
        windows = [
            self._window(df, x, y, pred_len, f"df_list[{i}]")
            for i, (df, x, y) in enumerate(zip(df_list, xs, ys))
        ]
        return self._forecasts(
            windows,
            pred_len,
            sample_count=sample_count,
            T=T,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            generator=generator,
            batch_size=batch_size,
            verbose=verbose,
            use_cache=use_cache,
            anchor=anchor,
        )

    def forecast_series(
        self,
        series: PreparedSeries,
        ends: Sequence[int],
        pred_len: int,
        *,
        lookback: int,
        sample_count: int = 20,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        seed: int | Sequence[int] | None = None,
        generator: torch.Generator | None = None,
        batch_size: int | None = 64,
        verbose: bool = False,
        use_cache: bool = True,
        anchor: bool = False,
    ) -> list[Forecast]:
        """Forecasts of the windows of a prepared series ending at bars ``end - 1`` for each of ``ends``.

        Each window is the ``lookback`` bars before ``end`` (fewer at the start of the series) cut from the
        series' arrays, so no DataFrame is built or validated per window. The result of every window equals
        ``forecast_batch`` on that window's DataFrame with the same arguments.
        """
        n = len(series)
        if not len(ends):
            return []
        if not isinstance(lookback, int | np.integer) or lookback < MIN_HISTORY:
            raise DataError(f"lookback must be an integer >= {MIN_HISTORY} bars, got {lookback!r}")
        bad = [e for e in ends if not MIN_HISTORY <= int(e) <= n]
        if bad:
            raise DataError(
                f"window ends must lie in [{MIN_HISTORY}, {n}] for {series.name} ({n} bars), got {bad[:3]}"
            )
        windows = [series.window(int(e), int(lookback), pred_len, self.clip) for e in ends]
        return self._forecasts(
            windows,
            pred_len,
            sample_count=sample_count,
            T=T,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            generator=generator,
            batch_size=batch_size,
            verbose=verbose,
            use_cache=use_cache,
            anchor=anchor,
        )

    def _forecasts(self, windows: list[ForecastWindow], pred_len: int, **kwargs: Any) -> list[Forecast]:
        """Generate every window's paths and de-normalise them into :class:`Forecast` objects."""
        paths = self._generate_all(windows, pred_len, **kwargs)  # the keywords of forecast_batch
        return [
            Forecast(
                samples=(p * (w.std + 1e-5) + w.mean).astype(np.float32),
                timestamps=pd.DatetimeIndex(w.y_index),
                last_close=w.last_close,
                history_end=w.history_end,
            )
            for w, p in zip(windows, paths)
        ]
