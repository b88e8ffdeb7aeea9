"""Forecast metrics and baselines on cases small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from kronos_model import metrics
from kronos_model.baselines import BASELINES, run_baseline
from kronos_model.errors import DataError, InsufficientHistoryError, SamplingError


def test_crps_of_point_mass_is_absolute_error():
    samples = np.full((3, 7), 2.5)
    y = np.array([2.5, 4.0, -1.0])
    assert np.allclose(metrics.crps_samples(samples, y), [0.0, 1.5, 3.5])


def test_crps_of_two_equal_points_by_hand():
    # X in {0, 2} each w.p. 1/2, y = 0: E|X-y| = 1, E|X-X'| = (0+2+2+0)/4 = 1, CRPS = 1 - 0.5 = 0.5.
    # y = 1: E|X-y| = 1, so CRPS = 0.5 as well; y = 3: E|X-y| = (3+1)/2 = 2, CRPS = 1.5.
    got = metrics.crps_samples(np.array([[0.0, 2.0], [2.0, 0.0], [0.0, 2.0]]), np.array([0.0, 1.0, 3.0]))
    assert np.allclose(got, [0.5, 0.5, 1.5])


def test_crps_equals_integral_of_squared_cdf_difference():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=9), 0.3
    grid = np.linspace(-6, 6, 120_001)
    cdf = (x[None, :] <= grid[:, None]).mean(axis=1)
    integral = np.sum((cdf - (grid >= y)) ** 2) * (grid[1] - grid[0])
    assert metrics.crps_samples(x, np.float64(y)) == pytest.approx(integral, abs=1e-3)


def test_central_interval_and_coverage_of_known_quantiles():
    samples = np.arange(1.0, 101.0)[:, None].repeat(4, axis=1)  # [S=100, N=4]
    lo, hi = metrics.central_interval(samples, 0.8, axis=0)
    # linear interpolation: 1 + 0.1 * 99 = 10.9 and 1 + 0.9 * 99 = 90.1
    assert np.allclose(lo, 10.9) and np.allclose(hi, 90.1)
    y = np.array([5.0, 50.0, 95.0, 10.9])
    assert metrics.coverage(lo, hi, y) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="level"):
        metrics.central_interval(samples, 1.2)


def test_ic_and_rank_ic():
    x = np.linspace(-1, 1, 11)
    ic, t = metrics.information_coefficient(x, 3 * x + 1)
    assert ic == pytest.approx(1.0) and np.isinf(t)
    assert metrics.information_coefficient(x, -x)[0] == pytest.approx(-1.0)
    rank_ic, _ = metrics.rank_information_coefficient(x, np.exp(5 * x))  # monotone, not linear
    assert rank_ic == pytest.approx(1.0)
    assert metrics.pearson(x, np.exp(5 * x)) < 0.9
    assert np.isnan(metrics.pearson(np.zeros(5), np.arange(5.0)))  # a flat forecast has no IC


def test_t_statistic_by_hand():
    # r = 0.5, n = 14: 0.5 * sqrt(12 / 0.75) = 0.5 * 4 = 2
    assert metrics.t_statistic(0.5, 14) == pytest.approx(2.0)
    assert np.isnan(metrics.t_statistic(0.5, 2))


def test_rankdata_averages_ties():
    assert np.array_equal(metrics.rankdata(np.array([10.0, 20.0, 10.0, 5.0])), [2.5, 4.0, 2.5, 1.0])


def test_hit_rate_known_case():
    pred = np.array([0.1, -0.2, 0.3, 0.0, 0.5])
    real = np.array([0.2, 0.1, 0.4, -0.1, -0.5])
    # hit, miss, hit, no call (0.5), miss -> 2.5 / 5
    assert metrics.hit_rate(pred, real) == pytest.approx(0.5)


def test_mae_rmse_and_abs_step_returns():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    actual = np.array([[2.0, 2.0], [3.0, 1.0]])
    assert np.allclose(metrics.mae(pred, actual), [0.5, 1.5])
    assert np.allclose(metrics.rmse(pred, actual), [np.sqrt(0.5), np.sqrt(4.5)])
    steps = metrics.abs_step_returns(np.array([[110.0, 99.0]]), np.array([100.0]))
    assert np.allclose(steps, [[np.log(1.1), np.log(110 / 99)]])


def test_qlike_prefers_the_true_variance():
    r2 = np.random.default_rng(0).normal(0, 2.0, 20_000) ** 2
    losses = [metrics.qlike(np.full_like(r2, v), r2) for v in (1.0, 4.0, 16.0)]
    assert losses[1] < losses[0] and losses[1] < losses[2]
    assert np.isinf(metrics.qlike(np.zeros(3), np.ones(3)))


def test_score_paths_point_mass_at_truth_is_perfect():
    rng = np.random.default_rng(1)
    realised = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (30, 4)), axis=1))
    paths = np.repeat(realised[:, None, :], 5, axis=1)
    got = metrics.score_paths(paths, realised, np.full(30, 100.0))
    assert set(got) == set(metrics.METRIC_NAMES)
    for name in ("mae", "rmse", "crps", "width", "vol_mae"):
        assert np.allclose(got[name], 0.0)
    for name in ("hit_rate", "ic", "rank_ic", "coverage", "vol_ic"):
        assert np.allclose(got[name], 1.0)
    with pytest.raises(ValueError, match="shapes"):
        metrics.score_paths(paths, realised[:, :2], np.full(30, 100.0))


def test_score_paths_crps_is_in_return_units():
    realised = np.array([[110.0], [90.0]])
    paths = np.full((2, 3, 1), 100.0)  # random walk from 100
    got = metrics.score_paths(paths, realised, np.array([100.0, 100.0]))
    assert got["crps"] == pytest.approx([0.1])
    assert got["mae"] == pytest.approx([10.0])
    assert got["hit_rate"] == pytest.approx([0.5])


@pytest.fixture
def closes() -> np.ndarray:
    return 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 120)))


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_shape_seed_and_positivity(name, closes):
    a = run_baseline(name, closes, 6, 40, (7, 1))
    assert a.shape == (40, 6) and np.isfinite(a).all() and (a > 0).all()
    assert np.array_equal(a, run_baseline(name, closes, 6, 40, (7, 1)))
    if name != "random_walk":
        assert not np.array_equal(a, run_baseline(name, closes, 6, 40, (8, 1)))
        assert a[:, -1].std() > 0


def test_random_walk_and_bootstrap_values(closes):
    assert np.all(run_baseline("random_walk", closes, 3, 2) == closes[-1])
    rets = np.diff(np.log(closes))
    paths = run_baseline("bootstrap", closes, 3, 50, 0)
    steps = np.diff(np.log(np.concatenate([np.full((50, 1), closes[-1]), paths], axis=1)), axis=1)
    assert np.isin(np.round(steps, 10), np.round(rets, 10)).all()


def test_baseline_bad_input_errors(closes):
    with pytest.raises(DataError, match="unknown baseline"):
        run_baseline("oracle", closes, 3, 2)
    with pytest.raises(SamplingError, match="sample_count"):
        run_baseline("drift", closes, 3, 0)
    with pytest.raises(InsufficientHistoryError, match="lookback"):
        run_baseline("garch", closes[:10], 3, 4)
    with pytest.raises(DataError, match="positive"):
        run_baseline("drift", -closes, 3, 4)
