"""The gate's statistics: the rows' intersection-union gain p, Holm's correction of them, and
the McNemar test's power.

Fixed inputs where a value is asserted (worked out by hand in the comments), hypothesis where a
property must hold for every input.
"""

import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_assets.core.stats import _critical_counts, holm, mcnemar_items_for_power, mcnemar_p, mcnemar_power
from synth_assets.core.training.evaluation import SCORE_SCHEMA
from synth_assets.core.training.gate import GateSettings, compare, decision

P_VALUES = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=40)


# ------------------------------------------------------------------ Holm
@settings(max_examples=200, deadline=None)
@given(P_VALUES)
def test_holm_is_never_below_the_raw_p_nor_above_one(ps):
    assert all(p <= a <= 1.0 for p, a in zip(ps, holm(ps), strict=True))


@settings(max_examples=200, deadline=None)
@given(P_VALUES)
def test_holm_keeps_the_order_of_the_raw_p_values(ps):
    adjusted = holm(ps)
    assert all(adjusted[i] <= adjusted[j] for i in range(len(ps)) for j in range(len(ps)) if ps[i] <= ps[j])


@settings(max_examples=200, deadline=None)
@given(P_VALUES)
def test_holm_is_bonferroni_for_the_smallest_p(ps):
    assert min(holm(ps)) == min(1.0, len(ps) * min(ps))


def test_holm_on_a_worked_example():
    # sorted 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_one_p_of_003_among_nine_survives_no_correction_but_holms():
    adjusted = holm([0.03] + [0.5] * 8)
    assert (adjusted[0], min(adjusted) < 0.05) == (pytest.approx(0.27), False)


# ------------------------------------------------------------------ the gate with and without it
FAMILIES = ("chain_sum", "basic_arithmetic", "gcd")
VARIANTS = ("heldout", "harder", "rephrased")
N = 100


def _row_frames(family: str, variant: str, parent: list[bool], cand: list[bool]):
    ids = [f"{family}/{variant}/{i}" for i in range(N)]

    def scores(model: str, correct: list[bool]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "model_id": [model] * N,
                "item_id": ids,
                "family": [family] * N,
                "variant": [variant] * N,
                "completion": ["x"] * N,
                "answer_given": [str(i) for i in range(N)],  # no diversity is lost anywhere
                "correct": correct,
            },
            schema=SCORE_SCHEMA,
        )

    baselines = pl.DataFrame(
        {
            "item_id": ids,
            "family": [family] * N,
            "variant": [variant] * N,
            "answer": [str(i % 8) for i in range(N)],
            "most_common": parent,  # the stronger baseline scores what the parent scores
            "last_shot": [False] * N,
            "as_given": [False] * N,
        }
    )
    return scores("c", cand), scores("p", parent), baselines


def _nine_rows(
    lone: tuple[str, str] = ("chain_sum", "heldout"), won_lost: tuple[int, int] = (16, 5)
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """3 families x 3 variants of 100 items. The ``lone`` row: the candidate wins 16 discordant
    items and loses 5 (McNemar p = 0.027, vs the parent and the baseline alike); every other row
    6 vs 3 (p = 0.51): 9 row gain p-values (each the larger of the row's two), one of 0.027."""
    parts = []
    for family in FAMILIES:
        for variant in VARIANTS:
            won, lost = won_lost if (family, variant) == lone else (6, 3)
            parent = [i < 30 for i in range(N)]  # items 0-29 right
            cand = [(i < 30 and i >= lost) or 30 <= i < 30 + won for i in range(N)]
            parts.append(_row_frames(family, variant, parent, cand))
    return tuple(pl.concat(frames) for frames in zip(*parts, strict=True))


def test_a_lone_p_of_003_among_nine_rows_is_a_gain_only_without_the_correction():
    cand, parent, base = _nine_rows()
    holm_ = compare(cand, parent, base, GateSettings()).filter(pl.col("family") != "_macro_")
    none_ = compare(cand, parent, base, GateSettings(correction="none")).filter(pl.col("family") != "_macro_")
    lone = pl.col("family").eq("chain_sum") & pl.col("variant").eq("heldout")
    row = holm_.filter(lone).row(0, named=True)
    assert row["p_vs_parent"] == pytest.approx(0.0266, abs=1e-4) == row["p_vs_baseline"]
    # Holm over the 3 held-out rows (the primary family): the smallest is multiplied by 3 (0.08);
    # the others, held-out (2 x 0.51) and shifted (6 x 0.51, their own family), capped at 1
    assert row["p_gain_adj"] == pytest.approx(3 * row["p_vs_parent"])
    assert holm_.filter(~lone)["p_gain_adj"].to_list() == [1.0] * 8
    assert holm_["significant_gain"].to_list() == [False] * 9
    assert none_.filter(pl.col("significant_gain")).select("family", "variant").rows() == [("chain_sum", "heldout")]
    # uncorrected, a row's gain p is the larger of its two
    raw = [max(a, b) for a, b in zip(none_["p_vs_parent"], none_["p_vs_baseline"], strict=True)]
    assert none_["p_gain_adj"].to_list() == raw


def test_a_row_gain_p_is_the_larger_of_its_two_the_intersection_union_test():
    """One row: the candidate wins 30 discordant items over the parent and loses none (p ~ 2e-9);
    a baseline right on 57 of its 60 is beaten too, but by 3 vs 0 (p = 0.25). Better than both,
    significantly only than one: no gain, even uncorrected. With the baseline as weak as the
    parent the row's p is the parent test's and the gain stands."""
    parent, cand = [i < 30 for i in range(N)], [i < 60 for i in range(N)]
    c, p, base = _row_frames("chain_sum", "heldout", parent, cand)
    strong = base.with_columns(most_common=pl.Series([i < 57 for i in range(N)]))
    for correction in ("holm", "none"):  # one row: Holm leaves its p as it is
        row = compare(c, p, strong, GateSettings(correction=correction)).row(0, named=True)
        assert row["p_vs_parent"] < 1e-8 and row["p_vs_baseline"] == pytest.approx(0.25)
        assert (row["p_gain_adj"], row["significant_gain"]) == (pytest.approx(0.25), False)
        row = compare(c, p, base, GateSettings(correction=correction)).row(0, named=True)
        assert (row["p_gain_adj"], row["significant_gain"]) == (row["p_vs_parent"], True)


def test_the_gate_refuses_a_lone_p_of_003_among_nine_rows_with_no_gain():
    cand, parent, base = _nine_rows()
    ok, reasons = decision(compare(cand, parent, base, GateSettings()))
    assert (ok, [r.split(":")[0] for r in reasons]) == (False, ["NO_GAIN"])
    assert decision(compare(cand, parent, base, GateSettings(correction="none"))) == (True, [])


def test_a_held_out_p_of_001_is_corrected_over_the_held_out_rows_only_and_promotes():
    """The promotion decision's family is the three held-out rows (the levels trained at): a
    p of 0.0106 there is 0.032 after Holm over three (a gain; the candidate is promoted), where
    Holm over all nine rows would have made it 0.096 (no gain)."""
    cand, parent, base = _nine_rows(won_lost=(18, 5))
    cmp_ = compare(cand, parent, base, GateSettings())
    row = cmp_.filter(pl.col("family").eq("chain_sum") & pl.col("variant").eq("heldout")).row(0, named=True)
    assert row["p_vs_parent"] == pytest.approx(0.0106, abs=1e-4)
    assert (row["p_gain_adj"], row["significant_gain"]) == (pytest.approx(3 * row["p_vs_parent"]), True)
    assert decision(cmp_) == (True, [])


def test_a_gain_on_a_shifted_variant_alone_never_promotes():
    """The same p of 0.0106 on a harder variant is corrected among the six shifted rows (0.064)
    and, being secondary, could not promote even uncorrected: NO_GAIN."""
    cand, parent, base = _nine_rows(lone=("chain_sum", "harder"), won_lost=(18, 5))
    cmp_ = compare(cand, parent, base, GateSettings())
    row = cmp_.filter(pl.col("family").eq("chain_sum") & pl.col("variant").eq("harder")).row(0, named=True)
    assert (row["p_gain_adj"], row["significant_gain"]) == (pytest.approx(6 * row["p_vs_parent"]), False)
    assert [r.split(":")[0] for r in decision(cmp_)[1]] == ["NO_GAIN"]
    uncorrected = compare(cand, parent, base, GateSettings(correction="none"))
    assert [r.split(":")[0] for r in decision(uncorrected)[1]] == ["NO_GAIN"]


def test_regressions_are_not_corrected():
    """A row significantly worse at the raw level is a REGRESSION whatever the correction: the
    candidate loses 16 items and wins 5 (p = 0.027) among nine rows."""
    parts = []
    for family in FAMILIES:
        for variant in VARIANTS:
            parent = cand = [i < 30 for i in range(N)]
            if (family, variant) == ("gcd", "harder"):
                parent, cand = [i < 46 for i in range(N)], [i < 30 or 46 <= i < 51 for i in range(N)]
            parts.append(_row_frames(family, variant, parent, cand))
    cand, parent, base = (pl.concat(frames) for frames in zip(*parts, strict=True))
    flags = compare(cand, parent, base, GateSettings()).filter(pl.col("flag") != "")["flag"].to_list()
    assert flags == ["SHIFT_REGRESSION", "NO_GAIN"]


def test_every_row_carries_its_power_the_macro_row_none():
    cand, parent, base = _nine_rows()
    cmp_ = compare(cand, parent, base, GateSettings())
    rows = cmp_.filter(pl.col("family") != "_macro_")
    # chain_sum/heldout (first): 21 of 100 discordant; the others 9, under the 0.2 floor; each row
    # at 0.05 / 3 (three held-out rows) or 0.05 / 6 (six shifted rows)
    expected = [
        mcnemar_power(N, 0.21 if i == 0 else 0.2, 0.10, 0.05 / (3 if v == "heldout" else 6))
        for i, v in enumerate(rows["variant"])
    ]
    assert rows["power_10pt"].to_list() == pytest.approx(expected)
    uncorrected = compare(cand, parent, base, GateSettings(correction="none")).filter(pl.col("family") != "_macro_")
    expected = [mcnemar_power(N, 0.21)] + [mcnemar_power(N, 0.2)] * 8
    assert uncorrected["power_10pt"].to_list() == pytest.approx(expected)
    assert cmp_.filter(pl.col("family") == "_macro_")["power_10pt"].to_list() == [None]


# ------------------------------------------------------------------ power
def _split(b: int, d: int) -> tuple[list[bool], list[bool]]:
    """d discordant pairs, b of them for the first model."""
    return [True] * b + [False] * (d - b), [False] * b + [True] * (d - b)


def test_the_critical_counts_are_the_ones_mcnemar_p_finds_significant():
    for alpha in (0.05, 0.05 / 9):
        critical = _critical_counts(60, alpha)
        for d in range(61):
            first = next(
                (b for b in range(d // 2 + 1, d + 1) if mcnemar_p(*_split(b, d)) < alpha),
                d + 1,
            )
            assert critical[d] == first


def test_power_by_brute_force_on_a_small_case():
    """Every (discordant count D, candidate's share b) of 30 items, tested with mcnemar_p itself."""
    n, disc, gain = 30, 0.3, 0.15
    q = (disc + gain) / (2 * disc)
    brute = sum(
        math.comb(n, d) * disc**d * (1 - disc) ** (n - d) * math.comb(d, b) * q**b * (1 - q) ** (d - b)
        for d in range(n + 1)
        for b in range(d + 1)
        if b > d - b and mcnemar_p(*_split(b, d)) < 0.05
    )
    assert mcnemar_power(n, disc, gain) == pytest.approx(brute, rel=1e-9)


def test_power_rises_with_the_number_of_items():
    powers = [mcnemar_power(n, 0.2) for n in (25, 50, 100, 200, 400)]
    assert powers == sorted(powers) and powers[-1] > 0.9


def test_power_of_a_10_point_gain_at_100_items_and_20_percent_discordant():
    """D ~ Binomial(100, 0.2), 20 on average; with D = 20 the test needs 15 of them for the
    candidate (15 vs 5: p = 0.041; 14 vs 6: p = 0.115) and each goes its way with q = 0.75:
    P(Binomial(20, 0.75) >= 15) = 0.617. Averaged over D the exact power is 0.544."""
    assert mcnemar_power(100, 0.2) == pytest.approx(0.54444, abs=1e-5)
    assert mcnemar_power(100, 0.2, alpha=0.05 / 9) == pytest.approx(0.22589, abs=1e-5)


def test_items_for_80_percent_power():
    n = mcnemar_items_for_power(0.2)
    assert (n, mcnemar_power(n - 1, 0.2) < 0.8 <= mcnemar_power(n, 0.2)) == (168, True)


@pytest.mark.parametrize("args", [(100, 0.05), (100, 1.2), (-1, 0.2)])
def test_power_refuses_a_gain_the_discordant_rate_cannot_carry(args):
    with pytest.raises(ValueError):
        mcnemar_power(*args)


# ------------------------------------------------------------------ stopping once the decision is settled
@st.composite
def _evaluation(draw: st.DrawFn) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, int]:
    """Held-out items of one or two families (heldout and harder), a parent's and a candidate's answers
    on all of them (right, or one of two wrong answers), and how many the candidate answered so far."""

    rows, cand, par = [], [], []
    n = draw(st.integers(8, 120))
    skill = draw(st.floats(0.0, 1.0))
    families = draw(st.sampled_from([("a@1",), ("a@1", "b@1")]))
    for i in range(n):
        family, variant = families[i % len(families)], ("heldout", "harder")[(i // len(families)) % 2]
        answer = str(draw(st.integers(0, 9)))
        rows.append(
            {"item_id": f"i{i}", "family": family, "variant": variant, "answer": answer, "last_shot_answer": "0"}
        )
        for who, p_right in ((par, 0.3), (cand, skill)):
            right = draw(st.floats(0, 1)) < p_right
            given = answer if right else draw(st.sampled_from(["x", "y"]))
            who.append(
                {"item_id": f"i{i}", "family": family, "variant": variant, "correct": right, "answer_given": given}
            )
    items = pl.DataFrame(rows)
    return items, pl.DataFrame(cand), pl.DataFrame(par), draw(st.integers(1, n))


@given(_evaluation())
@settings(max_examples=150, deadline=None)
def test_a_settled_decision_is_the_decision_every_item_gives(case):
    """Stopping early never changes the gate's decision: whenever the answers so far settle it,
    the decision on every item is the same."""
    from synth_assets.core.training.gate import settled
    from synth_assets.core.training.heldout import trivial_baselines

    items, cand, par, seen = case
    baselines = trivial_baselines(items)
    gate = GateSettings()
    full = decision(compare(cand, par, baselines, gate))
    early = settled(cand.head(seen), par, items, baselines, gate)
    assert early is None or early[0] == full[0]


def _one_family_items(n: int) -> pl.DataFrame:
    """n held-out items of one family, answers 0-9 in turn, the last shot's answer never right."""
    return pl.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n)],
            "family": ["a@1"] * n,
            "variant": ["heldout"] * n,
            "answer": [str(i % 10) for i in range(n)],
            "last_shot_answer": ["x"] * n,
        }
    )


def test_a_clearly_better_candidate_is_settled_before_every_item_is_evaluated():
    from synth_assets.core.training.gate import settled
    from synth_assets.core.training.heldout import trivial_baselines

    items = _one_family_items(200)
    par = items.select(
        "item_id",
        "family",
        "variant",
        (pl.col("item_id").str.slice(1).cast(int) % 10 == 0).alias("correct"),
        pl.col("answer").alias("answer_given"),
    )
    cand = items.select(
        "item_id", "family", "variant", pl.lit(True).alias("correct"), pl.col("answer").alias("answer_given")
    )
    assert settled(cand.head(150), par, items, trivial_baselines(items), GateSettings()) == (True, [])


def test_a_clearly_worse_candidate_is_refused_before_every_item_is_evaluated():
    from synth_assets.core.training.gate import settled
    from synth_assets.core.training.heldout import trivial_baselines

    items = _one_family_items(200)
    par = items.select(
        "item_id", "family", "variant", pl.lit(True).alias("correct"), pl.col("answer").alias("answer_given")
    )
    cand = par.with_columns(pl.lit(False).alias("correct"), pl.lit("7").alias("answer_given"))
    ok, reasons = settled(cand.head(60), par, items, trivial_baselines(items), GateSettings())
    assert (ok, [r.split(":")[0] for r in reasons]) == (False, ["REGRESSION", "MACRO_LOWER"])


def test_an_early_refusal_says_its_rates_are_the_best_case_not_what_was_seen():
    """A refusal settled early reports the rates with every unevaluated item counted right; read
    as observed, a refused candidate looks better than its parent."""
    from synth_assets.core.training.gate import settled
    from synth_assets.core.training.heldout import trivial_baselines

    items = _one_family_items(200)
    par = items.select(
        "item_id", "family", "variant", pl.lit(True).alias("correct"), pl.col("answer").alias("answer_given")
    )
    cand = par.with_columns(pl.lit(False).alias("correct"), pl.lit("7").alias("answer_given"))
    _, reasons = settled(cand.head(60), par, items, trivial_baselines(items), GateSettings())
    assert reasons[0] == (
        "REGRESSION: a@1/heldout 0.700 vs parent 1.000 (McNemar p=0.0000) at best: settled after 60 of 200 "
        "held-out items, the 140 not evaluated counted right"
    )
