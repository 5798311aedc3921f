"""Intervals and paired tests shared by every stage that reports a rate: the judge's calibration,
the held-out evaluation, the gate and the charts; Holm's multiple-comparison correction and the
paired test's power (the gate). Base layer: imports nothing of the platform."""

from collections.abc import Sequence

import numpy as np
from scipy.stats import binom, binomtest


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of k successes in n."""
    if n == 0:
        return (0.0, 1.0)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return (float(ci.low), float(ci.high))


def mcnemar_p(a: list[bool], b: list[bool]) -> float:
    """Exact two-sided McNemar test on paired outcomes (a binomial test on the discordant pairs)."""
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's (1979) step-down adjusted p-values, in the input order.

    Sort the m p-values ascending; the i-th smallest (i from 1) is multiplied by m - i + 1,
    capped at 1, and each adjusted value is at least the one before it in that order (the
    running maximum makes the procedure step-down). Rejecting where the adjusted p is under
    alpha is Holm's procedure: the family-wise error rate stays under alpha whatever the
    dependence between the tests. The smallest p gets the Bonferroni adjustment (m * p); no
    adjusted p is below its raw one or above 1. Ties get equal adjusted values. Written here
    because the environment has scipy but not statsmodels (``multipletests(method="holm")``
    gives the same values)."""
    m = len(pvalues)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: pvalues[j])):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        adjusted[i] = running
    return adjusted


def _critical_counts(n: int, alpha: float) -> np.ndarray:
    """For every number D = 0..n of discordant pairs: the smallest count b on one side (b > D/2)
    that the exact two-sided McNemar test (``mcnemar_p``: 2 P(X >= b), X ~ Binomial(D, 1/2))
    finds significant (p < alpha); D + 1 where no count is."""
    d = np.arange(n + 1)
    c = np.maximum(binom.isf(alpha / 2, d, 0.5).astype(np.int64) + 1, d // 2 + 1)
    c = np.minimum(c, d + 1)

    def significant(b: np.ndarray) -> np.ndarray:
        return (b <= d) & (b > d / 2) & (2 * binom.sf(b - 1, d, 0.5) < alpha)

    # isf's floating point can land one off the boundary: step to the exact critical count
    for _ in range(3):
        c = np.where(significant(c - 1), c - 1, c)
        c = np.where((c <= d) & ~significant(c), c + 1, c)
    return c


def _power(n: int, discordant: float, gain: float, critical: np.ndarray) -> float:
    d = np.arange(n + 1)
    q = (discordant + gain) / (2 * discordant)
    return float(np.sum(binom.pmf(d, n, discordant) * binom.sf(critical[: n + 1] - 1, d, q)))


def mcnemar_power(n: int, discordant: float, gain: float = 0.10, alpha: float = 0.05) -> float:
    """Power of the exact McNemar test (``mcnemar_p`` at ``alpha``) to find a candidate
    significantly better than its parent on n paired items, when it is truly ``gain`` better.

    Exact, by binomial sums (no simulation, no seed): each item is discordant (one model right,
    the other wrong) with probability ``discordant``, so the number D of discordant pairs is
    Binomial(n, discordant); a discordant pair favours the candidate with probability
    q = (discordant + gain) / (2 discordant), which makes the candidate's expected rate ``gain``
    above the parent's. Power = sum over D of P(D) * P(Binomial(D, q) >= c(D)), c(D) the test's
    critical count (a significant result in the candidate's favour, as the gate requires).
    A net gain needs at least that many discordant items: 0 < gain <= discordant <= 1."""
    if n < 0 or not 0 < gain <= discordant <= 1 or not 0 < alpha < 1:
        raise ValueError(
            f"need n >= 0, 0 < gain <= discordant <= 1, 0 < alpha < 1; got {n}, {gain}, {discordant}, {alpha}"
        )
    return _power(n, discordant, gain, _critical_counts(n, alpha))


def mcnemar_items_for_power(
    discordant: float, gain: float = 0.10, alpha: float = 0.05, power: float = 0.8, max_n: int = 100_000
) -> int:
    """The fewest paired items n at which ``mcnemar_power(n, discordant, gain, alpha)`` reaches
    ``power`` (a scan over n: an exact test's power is not strictly monotone in n, so this is the
    first n that reaches it)."""
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")
    mcnemar_power(0, discordant, gain, alpha)  # validates the arguments
    lo, hi = 1, 64
    while lo <= max_n:
        hi = min(hi, max_n)
        critical = _critical_counts(hi, alpha)
        for n in range(lo, hi + 1):
            if _power(n, discordant, gain, critical) >= power:
                return n
        lo, hi = hi + 1, hi * 2
    raise ValueError(f"power {power} is not reached within {max_n} items")
