"""Paired statistics of an ablation (fashion_tune.report.paired): hand-worked values and scipy."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from fashion_tune.report.paired import (
    Paired,
    Reach,
    SpeedCompare,
    first_reach,
    holm,
    km_median,
    paired_compare,
    paired_speed,
    sentence,
    with_holm,
)

NAN, INF = math.nan, math.inf
T_975_4 = 2.7764451051977934  # t quantile 0.975 with 4 degrees of freedom (tables)

# five seeds; per-seed improvement of the variant (mode min: base - variant) = 2, 4, 3, 5, 1
DIFFS = {0: 2.0, 1: 4.0, 2: 3.0, 3: 5.0, 4: 1.0}
BASE = {s: 10.0 + s for s in DIFFS}
VARIANT = {s: BASE[s] - d for s, d in DIFFS.items()}  # lower fd: better by d


def test_hand_worked_five_seeds() -> None:
    # mean 3; squared deviations 1 + 1 + 0 + 4 + 4 = 10; sd = sqrt(10 / 4) = sqrt(2.5)
    # se = sd / sqrt(5) = sqrt(0.5); t = 3 / sqrt(0.5) = 3 sqrt(2); d_z = 3 / sqrt(2.5)
    # t_4 CDF: F(t) = 1/2 + 3u/4 - u^3/4 with u = t / sqrt(4 + t^2) = 3 / sqrt(11)
    # two-sided p = 2 (1 - F) = 1 - 3u/2 + u^3/2
    # Wilcoxon: all 5 differences positive, W- = 0: exact two-sided p = 2 / 2^5 = 0.0625
    r = paired_compare(BASE, VARIANT, "min")
    u = 3 / math.sqrt(11)
    assert (r.n, r.dropped) == (5, 0)
    assert r.mean_diff == pytest.approx(3.0)
    assert r.t == pytest.approx(3 * math.sqrt(2))
    assert r.dz == pytest.approx(3 / math.sqrt(2.5))
    assert r.low == pytest.approx(3 - T_975_4 * math.sqrt(0.5))
    assert r.high == pytest.approx(3 + T_975_4 * math.sqrt(0.5))
    assert r.p_t == pytest.approx(1 - 1.5 * u + 0.5 * u**3)
    assert r.p_w == pytest.approx(0.0625)
    assert (r.p_t_holm, r.p_w_holm) == (None, None)
    ref = stats.ttest_rel([BASE[s] for s in DIFFS], [VARIANT[s] for s in DIFFS])
    assert r.t == pytest.approx(float(ref.statistic))
    assert r.p_t == pytest.approx(float(ref.pvalue))


def test_level_changes_the_interval_only() -> None:
    r = paired_compare(BASE, VARIANT, "min", level=0.90)
    half = float(stats.t.ppf(0.95, 4)) * math.sqrt(0.5)
    assert (r.low, r.high) == (pytest.approx(3 - half), pytest.approx(3 + half))
    assert r.p_t == pytest.approx(paired_compare(BASE, VARIANT, "min").p_t)
    with pytest.raises(ValueError):
        paired_compare(BASE, VARIANT, "min", level=1.0)


def test_mode_max_flips_the_sign() -> None:
    lo = paired_compare(BASE, VARIANT, "min")
    hi = paired_compare(BASE, VARIANT, "max")  # higher is better: the variant is worse
    assert hi.mean_diff == pytest.approx(-3.0)
    assert hi.t == pytest.approx(-lo.t)  # type: ignore[operator]
    assert hi.dz == pytest.approx(-lo.dz)  # type: ignore[operator]
    assert (hi.low, hi.high) == (pytest.approx(-lo.high), pytest.approx(-lo.low))  # type: ignore[operator]
    assert hi.p_t == pytest.approx(lo.p_t)
    assert hi.p_w == pytest.approx(lo.p_w)
    with pytest.raises(ValueError):
        paired_compare(BASE, VARIANT, "lower")


def test_unpaired_and_non_finite_seeds_are_dropped() -> None:
    base = {0: 1.0, 1: 2.0, 2: NAN, 3: 4.0, 5: 1.0, 6: 3.0}
    variant = {0: 0.5, 1: 1.0, 2: 1.0, 4: 3.0, 5: INF, 6: 2.0}
    r = paired_compare(base, variant, "min")
    # paired: seeds 0, 1, 6 (diffs 0.5, 1.0, 1.0); union {0..6} has 7 seeds -> 4 dropped
    assert (r.n, r.dropped) == (3, 4)
    assert r.mean_diff == pytest.approx(2.5 / 3)
    ref = stats.ttest_rel([1.0, 2.0, 3.0], [0.5, 1.0, 2.0])
    assert r.p_t == pytest.approx(float(ref.pvalue))


def test_too_few_pairs() -> None:
    one = paired_compare({0: 1.0, 1: 2.0}, {0: 0.5}, "min")
    assert (one.n, one.dropped, one.mean_diff) == (1, 1, 0.5)
    assert (one.low, one.high, one.dz, one.t, one.p_t, one.p_w) == (None,) * 6
    none = paired_compare({0: NAN}, {1: 1.0}, "max")
    assert (none.n, none.dropped, none.mean_diff, none.p_t) == (0, 2, None, None)


def test_identical_differences() -> None:
    base = {s: 1.0 + s for s in range(5)}
    same = paired_compare(base, {s: v - 0.5 for s, v in base.items()}, "min")
    assert (same.t, same.p_t, same.dz) == (INF, 0.0, None)
    assert (same.mean_diff, same.low, same.high) == (0.5, 0.5, 0.5)
    assert same.p_w == pytest.approx(0.0625)  # five positive ranks: 2 / 32
    worse = paired_compare(base, {s: v - 0.5 for s, v in base.items()}, "max")
    assert (worse.t, worse.p_t) == (-INF, 0.0)
    zero = paired_compare(base, dict(base), "min")
    assert (zero.t, zero.p_t, zero.p_w, zero.dz, zero.mean_diff) == (0.0, 1.0, 1.0, None, 0.0)


def test_wilcoxon_matches_scipy_with_zeros() -> None:
    base = {s: 1.0 for s in range(8)}
    d = [0.3, -0.1, 0.0, 0.2, 0.5, -0.4, 0.25, 0.05]
    variant = {s: 1.0 - x for s, x in enumerate(d)}
    r = paired_compare(base, variant, "min")
    diffs = [base[s] - variant[s] for s in range(8)]
    ref = stats.wilcoxon(diffs, zero_method="wilcox")
    assert r.p_w == pytest.approx(float(ref.pvalue))
    assert r.p_w != pytest.approx(float(stats.wilcoxon(diffs, zero_method="pratt").pvalue))
    assert r.p_t == pytest.approx(float(stats.ttest_1samp(diffs, 0.0).pvalue))


def test_holm_hand_examples() -> None:
    # m = 3; sorted 0.01, 0.03, 0.04 -> 3 * 0.01 = 0.03; 2 * 0.03 = 0.06; 1 * 0.04 -> max 0.06
    assert holm([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # 1.2 capped, monotone
    assert holm([0.02, None, 0.5]) == pytest.approx([0.04, None, 0.5])
    assert holm([None, None]) == [None, None]
    assert holm([]) == []
    with pytest.raises(ValueError):
        holm([1.5])


def test_with_holm_adjusts_t_and_wilcoxon_separately() -> None:
    a = Paired(5, 0, 1.0, 0.5, 1.5, 1.0, 3.0, 0.01, 0.0625)
    b = Paired(5, 0, 0.5, -0.5, 1.5, 0.3, 1.0, 0.04, 0.3)
    c = Paired(1, 4, 0.2, None, None, None, None, None, None)
    d = Paired(5, 0, -0.2, -0.5, 0.1, -0.5, -1.5, 0.03, 0.2)
    out = with_holm([a, b, c, d])
    assert [r.p_t_holm for r in out] == pytest.approx([0.03, 0.06, None, 0.06])
    # Wilcoxon: sorted 0.0625, 0.2, 0.3 -> 0.1875, 0.4, 0.4
    assert [r.p_w_holm for r in out] == pytest.approx([0.1875, 0.4, None, 0.4])
    assert [(r.n, r.mean_diff, r.p_t, r.p_w) for r in out] == [
        (r.n, r.mean_diff, r.p_t, r.p_w) for r in (a, b, c, d)
    ]
    assert a.p_t_holm is None  # copies: the inputs are unchanged


def test_sentence() -> None:
    p = Paired(5, 0, 0.031, 0.010, 0.052, 1.4, 4.0, 0.001, 0.03, p_t_holm=0.004, p_w_holm=0.06)
    assert sentence("pixel", "none", p, "fd") == (
        "pixel vs none: fd better by 0.031 (95% CI 0.010 to 0.052, d_z 1.4) over 5 paired "
        "seeds; significant after Holm's correction (paired t p=0.004, Wilcoxon p=0.06)."
    )
    worse = Paired(4, 1, -2.5, -4.1, -0.9, -1.2, -3.0, 0.01, 0.1, p_t_holm=0.2, p_w_holm=0.3)
    assert sentence("adversarial", "none", worse, "fd") == (
        "adversarial vs none: fd worse by 2.5 (95% CI 0.9 to 4.1, d_z 1.2) over 4 paired "
        "seeds; no difference beyond seed noise after Holm's correction (paired t p=0.2, "
        "Wilcoxon p=0.3)."
    )
    raw = sentence("pixel", "none", Paired(5, 0, 3.0, 1.0, 5.0, 1.9, 4.2, 0.013, 0.06), "fd")
    assert "significant without correction for multiple comparisons" in raw
    assert "(paired t p=0.013, Wilcoxon p=0.06)" in raw
    assert "significant" not in sentence("x", "none", p, "fd", alpha=0.001)
    at_alpha = Paired(5, 0, 1.0, 0.1, 1.9, 1.0, 2.9, 0.05, 0.06, p_t_holm=0.05, p_w_holm=0.06)
    assert "no difference beyond seed noise" in sentence("x", "none", at_alpha, "fd")  # p < alpha
    few = sentence("pixel", "none", paired_compare({0: 1.0}, {0: 0.5, 1: 2.0}, "min"), "fd")
    assert (
        few == "pixel vs none: too few paired seeds to test (1 paired, 1 unpaired or not finite)."
    )


def test_first_reach() -> None:
    curve = [(0.0, 5.0), (1.0, 3.0), (2.0, NAN), (3.0, 1.0), (4.0, 0.8)]
    assert first_reach(curve, 2.0, "min") == Reach(3.0, True)  # NaN at 2 is skipped
    assert first_reach(curve, 3.0, "min") == Reach(1.0, True)  # at the threshold counts
    assert first_reach(curve, 0.5, "min") == Reach(4.0, False)  # censored at the last x
    assert first_reach(curve, 4.0, "max") == Reach(0.0, True)
    assert first_reach(curve, 6.0, "max") == Reach(4.0, False)
    assert first_reach([(1.0, NAN), (2.0, NAN)], 0.0, "max") == Reach(2.0, False)
    assert first_reach([(1.0, -INF), (2.0, 0.5)], 1.0, "min") == Reach(2.0, True)
    assert first_reach([], 1.0, "min") == Reach(0.0, False)
    with pytest.raises(ValueError):
        first_reach([(2.0, 1.0), (1.0, 1.0)], 1.0, "min")


def test_km_median_hand_worked() -> None:
    # times 2, 3+ (censored), 4, 5+, 6:
    #   t=2: at risk 5, 1 event -> S = 4/5 = 0.8
    #   t=4: at risk {4, 5+, 6} = 3 -> S = 0.8 * 2/3 = 0.533 (> 0.5)
    #   t=6: at risk {6} = 1 -> S = 0 -> median 6
    runs = [Reach(2, True), Reach(3, False), Reach(4, True), Reach(5, False), Reach(6, True)]
    assert km_median(runs) == 6
    assert km_median(list(reversed(runs))) == 6
    # no censoring: S(1) = 3/4, S(2) = 1/2 -> median 2 (smallest t with S <= 0.5)
    assert km_median([Reach(t, True) for t in (4.0, 3.0, 2.0, 1.0)]) == 2.0
    # ties: 1, 1, 1+, 2, 3; events before the censoring at 1: at risk 5 -> S(1) = 3/5 = 0.6;
    # t=2: at risk {2, 3} -> S = 0.3 -> median 2 (censoring first would give S(1) = 0.5 -> 1)
    ties = [Reach(1, True), Reach(1, True), Reach(1, False), Reach(2, True), Reach(3, True)]
    assert km_median(ties) == 2
    # mostly censored: S(1) = 3/4, never <= 0.5
    assert km_median([Reach(1, True), Reach(2, False), Reach(3, False), Reach(4, False)]) is None
    assert km_median([]) is None


def test_paired_speed_cases() -> None:
    base = {
        0: Reach(2, True),  # both reached, variant earlier -> faster
        1: Reach(2, True),  # both reached, variant later -> slower
        2: Reach(2, True),  # same time -> tie
        3: Reach(4, True),  # variant censored at 5 after base's 4 -> slower
        4: Reach(4, True),  # variant censored at 4, base reached at 4 -> slower
        5: Reach(5, False),  # base censored at 5, variant reached at 3 -> faster
        6: Reach(5, False),  # both censored -> unknown
        7: Reach(3, True),  # variant censored at 2, before base's 3 -> unknown
        8: Reach(2, False),  # base censored at 2, before variant's 3 -> unknown
        9: Reach(1, True),  # base only: not a pair
    }
    variant = {
        0: Reach(1, True),
        1: Reach(3, True),
        2: Reach(2, True),
        3: Reach(5, False),
        4: Reach(4, False),
        5: Reach(3, True),
        6: Reach(5, False),
        7: Reach(2, False),
        8: Reach(3, True),
    }
    r = paired_speed(base, variant)
    # sign test, 2 faster of 5: P(X <= 2) = (1 + 5 + 10) / 32 = 1/2 -> two-sided 1.0
    assert r == SpeedCompare(n_pairs=9, faster=2, slower=3, ties_or_unknown=4, p=1.0)
    assert r.p == pytest.approx(stats.binomtest(2, 5, 0.5).pvalue)
    swapped = paired_speed(variant, base)
    assert (swapped.faster, swapped.slower, swapped.ties_or_unknown) == (3, 2, 4)


def test_paired_speed_sign_test() -> None:
    base = {s: Reach(10, False) for s in range(6)}
    variant = {s: Reach(5, True) for s in range(5)} | {5: Reach(10, False)}
    r = paired_speed(base, variant)
    assert (r.n_pairs, r.faster, r.slower, r.ties_or_unknown) == (6, 5, 0, 1)
    assert r.p == pytest.approx(2 / 32)  # exact two-sided: 2 * (1/2)^5
    assert r.p == pytest.approx(stats.binomtest(5, 5, 0.5).pvalue)
    none = paired_speed({0: Reach(3, False)}, {0: Reach(4, False), 1: Reach(1, True)})
    assert none == SpeedCompare(1, 0, 0, 1, None)
