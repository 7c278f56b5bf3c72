"""Paired statistics of an ablation: each value of a setting against the base value, by seed.

An ablation trains one base config once per value of a setting with the same S seeds per
value, so replica j of every value shares seed j: the design is paired by seed, and each
comparison is made on the per-seed differences (which removes the seed-to-seed noise that
the values share).

* ``paired_compare``: mean improvement with its Student-t interval, Cohen's d_z, the paired
  t-test and the Wilcoxon signed-rank test; ``holm``/``with_holm`` adjust the p-values of
  the comparisons of one ablation together; ``sentence`` says it in plain English.
* Speed to a threshold is right-censored (a run that never reached it only says "not before
  the end"): ``first_reach`` reads it off a curve, ``km_median`` is the Kaplan–Meier median
  and ``paired_speed`` a Gehan-style paired sign test that keeps the censored runs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

MODES = ("min", "max")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")


# -- paired comparison of the objective ---------------------------------------------------------
@dataclass(frozen=True)
class Paired:
    """A variant against the base, on the per-seed differences ``diff`` (positive = better).

    ``diff`` is ``base - variant`` for mode "min" and ``variant - base`` for mode "max".
    """

    n: int  # seeds with a finite value in both
    dropped: int  # seeds in either dict that could not be paired
    mean_diff: float | None  # mean of the differences (None: no pair)
    low: float | None  # Student-t interval of the mean difference at `level` (None: n < 2)
    high: float | None
    dz: float | None  # Cohen's d_z = mean_diff / sd of the differences (None: n < 2 or sd 0)
    t: float | None  # paired t statistic = mean_diff / (sd / sqrt(n)) (None: n < 2)
    p_t: float | None  # two-sided paired t-test p, n - 1 degrees of freedom (None: n < 2)
    p_w: float | None  # two-sided Wilcoxon signed-rank p, zeros dropped (None: n < 2)
    p_t_holm: float | None = None  # p_t adjusted by Holm across the ablation (with_holm)
    p_w_holm: float | None = None  # p_w adjusted by Holm across the ablation (with_holm)
    level: float = 0.95  # confidence level of low/high


def paired_compare(
    base: dict[int, float], variant: dict[int, float], mode: str, level: float = 0.95
) -> Paired:
    """Compare ``variant`` with ``base`` (seed -> objective value), paired by seed.

    Only seeds with a finite value in both are paired. The interval is
    ``mean +- t_{(1+level)/2, n-1} * sd / sqrt(n)`` of the differences; the t-test is the
    one-sample t-test of the differences (as ``scipy.stats.ttest_rel``), except that equal
    differences (sd 0) give ``t = +-inf, p = 0`` when nonzero and ``t = 0, p = 1`` when zero.
    The Wilcoxon p is ``scipy.stats.wilcoxon(diff, zero_method="wilcox")`` (exact
    distribution where scipy chooses it), 1.0 when every difference is zero.
    """
    from scipy import stats

    _check_mode(mode)
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), not {level}")
    seeds = sorted(
        s
        for s in base.keys() & variant.keys()
        if math.isfinite(base[s]) and math.isfinite(variant[s])
    )
    sign = 1.0 if mode == "max" else -1.0
    diffs = [sign * (float(variant[s]) - float(base[s])) for s in seeds]
    n = len(diffs)
    dropped = len(base.keys() | variant.keys()) - n
    if n == 0:
        return Paired(0, dropped, None, None, None, None, None, None, None, level=level)
    mean = math.fsum(diffs) / n
    if n < 2:
        return Paired(n, dropped, mean, None, None, None, None, None, None, level=level)
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (n - 1))
    if all(d == diffs[0] for d in diffs):
        sd, mean = 0.0, diffs[0]
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
    if sd == 0.0:
        dz = None
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        p_t = 1.0 if mean == 0 else 0.0
    else:
        dz = mean / sd
        t = mean / (sd / math.sqrt(n))
        p_t = min(1.0, 2.0 * float(stats.t.sf(abs(t), n - 1)))
    if all(d == 0 for d in diffs):
        p_w = 1.0
    else:
        p_w = float(stats.wilcoxon(diffs, zero_method="wilcox").pvalue)
    return Paired(n, dropped, mean, mean - half, mean + half, dz, t, p_t, p_w, level=level)


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values, in the input order.

    With the m non-None p-values sorted ascending, ``p_(i)`` becomes
    ``max_{j <= i} min(1, (m - j + 1) * p_(j))`` (step-down, monotone, capped at 1).
    None entries are passed through and not counted in m.
    """
    for p in pvalues:
        if p is not None and not 0 <= p <= 1:
            raise ValueError(f"a p-value must lie in [0, 1], not {p}")
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(present)
    out: list[float | None] = list(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def with_holm(results: list[Paired]) -> list[Paired]:
    """Copies of ``results`` with ``p_t_holm`` and ``p_w_holm`` set by Holm across the list.

    The t-test p-values are adjusted together, and the Wilcoxon p-values together.
    """
    pt = holm([r.p_t for r in results])
    pw = holm([r.p_w for r in results])
    return [replace(r, p_t_holm=a, p_w_holm=b) for r, a, b in zip(results, pt, pw)]


def _decimals(scale: float, digits: int) -> int:
    """Decimals that show ``digits`` significant digits of ``scale`` (0 when scale is 0)."""
    if scale == 0 or not math.isfinite(scale):
        return 3
    return max(0, digits - 1 - math.floor(math.log10(abs(scale))))


def _p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def sentence(label: str, base_label: str, p: Paired, metric: str, alpha: float = 0.05) -> str:
    """One plain English sentence on ``label`` against ``base_label`` for ``metric``.

    Numbers are rounded to two significant digits of the interval's half-width. The call
    "significant" is ``p_t_holm < alpha`` (Holm-adjusted paired t-test); the p-values shown
    are the Holm-adjusted ones. Without Holm's values (``with_holm`` not applied) the raw
    p-values are used and the sentence says so.
    """
    head = f"{label} vs {base_label}:"
    if p.n < 2 or p.mean_diff is None or p.low is None or p.high is None:
        return (
            f"{head} too few paired seeds to test ({p.n} paired, {p.dropped} unpaired "
            f"or not finite)."
        )
    mean, low, high = p.mean_diff, p.low, p.high
    dec = _decimals((high - low) / 2, 2) if high > low else _decimals(mean, 3)
    if mean < 0:  # say it as a worsening, its interval too
        word, mean, low, high = "worse", -mean, -high, -low
    elif mean > 0:
        word = "better"
    else:
        word = "unchanged on average"
    size = f" by {mean:.{dec}f}" if mean != 0 else ""
    dz = f", d_z {abs(p.dz):.2g}" if p.dz is not None else ""
    adjusted = p.p_t_holm is not None
    pt = p.p_t_holm if adjusted else p.p_t
    pw = p.p_w_holm if adjusted else p.p_w
    significant = pt is not None and pt < alpha
    if adjusted:
        verdict = "significant" if significant else "no difference beyond seed noise"
        verdict += " after Holm's correction"
    elif significant:
        verdict = "significant without correction for multiple comparisons"
    else:
        verdict = "no difference beyond seed noise (uncorrected)"
    return (
        f"{head} {metric} {word}{size} ({100 * p.level:g}% CI {low:.{dec}f} to {high:.{dec}f}"
        f"{dz}) over {p.n} paired seeds; {verdict} (paired t {_p(pt)}, Wilcoxon {_p(pw)})."
    )


# -- censored speed to a threshold -------------------------------------------------------------
@dataclass(frozen=True)
class Reach:
    """When a run first reached the threshold; ``reached=False``: censored at ``time``."""

    time: float  # first x at or better than the threshold, else the last x of the run
    reached: bool


def first_reach(curve: list[tuple[float, float]], threshold: float, mode: str) -> Reach:
    """The first x of ``curve`` ([(x, value)], x ascending) whose value is at or better than
    ``threshold`` (min: ``value <= threshold``; max: ``value >= threshold``).

    Never reached: censored at the last x. Empty curve: ``Reach(0.0, False)``. Non-finite
    values never reach.
    """
    _check_mode(mode)
    if not curve:
        return Reach(0.0, False)
    xs = [float(x) for x, _ in curve]
    if any(not math.isfinite(x) for x in xs) or any(b < a for a, b in itertools.pairwise(xs)):
        raise ValueError("curve x values must be finite and ascending")
    for x, value in curve:
        v = float(value)
        if math.isfinite(v) and (v <= threshold if mode == "min" else v >= threshold):
            return Reach(float(x), True)
    return Reach(xs[-1], False)


def km_median(reaches: list[Reach]) -> float | None:
    """Kaplan–Meier median time to the threshold, right-censored runs included.

    ``S(t) = prod over event times t_i <= t of (1 - d_i / n_i)``, with d_i events at t_i and
    n_i runs whose time is >= t_i (a run censored at t_i is still at risk: events come before
    censorings at the same time). The median is the smallest event time with S <= 0.5;
    None when S never drops to 0.5 (too many runs censored) or there are no runs.
    """
    if any(not math.isfinite(r.time) for r in reaches):
        raise ValueError("reach times must be finite")
    survival = 1.0
    for t in sorted({r.time for r in reaches if r.reached}):
        at_risk = sum(1 for r in reaches if r.time >= t)
        events = sum(1 for r in reaches if r.reached and r.time == t)
        survival *= 1.0 - events / at_risk
        if survival <= 0.5:
            return t
    return None


@dataclass(frozen=True)
class SpeedCompare:
    """Paired, censoring-aware comparison of the time to the threshold (Gehan-style)."""

    n_pairs: int  # seeds present in both
    faster: int  # pairs where the variant is known to reach first
    slower: int  # pairs where the base is known to reach first
    ties_or_unknown: int  # equal times, both censored, or censored before the other's event
    p: float | None  # two-sided exact sign test (binomial, 1/2) of faster vs slower


def paired_speed(base: dict[int, Reach], variant: dict[int, Reach]) -> SpeedCompare:
    """Score each seed in both: both reached: by time; one censored at c and the other
    reached at t <= c: the one that reached is faster; anything else is uninformative.
    ``p`` is ``scipy.stats.binomtest(faster, faster + slower, 0.5)`` (None when both 0).
    """
    from scipy import stats

    seeds = base.keys() & variant.keys()
    faster = slower = 0
    for s in seeds:
        b, v = base[s], variant[s]
        if b.reached and v.reached:
            faster += v.time < b.time
            slower += v.time > b.time
        elif b.reached and b.time <= v.time:  # variant censored at/after the base's event
            slower += 1
        elif v.reached and v.time <= b.time:  # base censored at/after the variant's event
            faster += 1
    informative = faster + slower
    p = float(stats.binomtest(faster, informative, 0.5).pvalue) if informative else None
    return SpeedCompare(len(seeds), faster, slower, len(seeds) - informative, p)
