"""`synth summary` says by how much the model in service improved, against the base model and
against its parent, per family@level and variant, from the registry's scores.

No model is trained: the registry rows are built by hand on a real temp DuckDB warehouse and
their adapters are the test double of tests/model_registry_fixtures.py."""

import polars as pl

from synth_assets.cli import main as cli
from synth_assets.core.training.registry import Registry
from synth_assets.core.warehouse import Warehouse
from tests.model_registry_fixtures import register_candidate, store_mix


def scores(rates: dict[str, tuple[float, float]]) -> dict:
    """The registry's ``scores`` (loop.summary_scores' shape): key -> (rate, parent_rate)."""
    return {
        key: {"rate": rate, "parent_rate": parent, "low": None, "high": None, "n": 20, "flag": ""}
        for key, (rate, parent) in rates.items()
    }


def promote(reg: Registry, tmp_path, model_id: str, generation: int, rates: dict) -> None:
    register_candidate(reg, tmp_path / "models", model_id=model_id, generation=generation)
    reg.set_scores(model_id, scores(rates))
    reg.decide(model_id, "promoted", "the gate passed")


def test_summary_prints_each_family_s_change_against_the_base_model_and_the_parent(db_path, tmp_path, capsys):
    wh = Warehouse(db_path)
    store_mix(wh, generation=1)
    store_mix(wh, generation=2)
    reg = Registry(wh)
    promote(
        reg,
        tmp_path,
        "g1-aaaaaaaaaa",
        1,
        {
            "gcd@1/heldout": (0.45, 0.25),
            "gcd@1/harder": (0.30, 0.20),
            "letter_counting@1/heldout": (0.10, 0.10),
            "_macro_/heldout": (0.275, 0.175),
        },
    )
    promote(
        reg,
        tmp_path,
        "g2-bbbbbbbbbb",
        2,
        {
            "gcd@1/heldout": (0.60, 0.45),
            "gcd@1/harder": (0.25, 0.30),
            "letter_counting@1/heldout": (0.05, 0.10),
            "_macro_/heldout": (0.325, 0.275),
        },
    )
    assert cli(["--db", db_path, "summary"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index(
        "improvement of g2-bbbbbbbbbb, the model in service (held-out pass rate then -> now, change in points):"
    )
    gcd = [line for line in lines[start:] if "gcd@1/" in line or line.startswith("  against")]
    assert gcd == [
        "  against the base model base (its rates when g1-aaaaaaaaaa, the lineage's first model, was gated):",
        "    gcd@1/heldout              0.250 -> 0.600  +35.0 points",
        "    gcd@1/harder               0.200 -> 0.250  +5.0 points",
        "  against its parent g1-aaaaaaaaaa (on the items g2-bbbbbbbbbb was gated on):",
        "    gcd@1/heldout              0.450 -> 0.600  +15.0 points",
        "    gcd@1/harder               0.300 -> 0.250  -5.0 points",
    ]
    assert [line for line in lines[start:] if "did not improve" in line] == [
        "    families that did not improve (held-out): letter_counting@1 (-5.0)",
        "    families that did not improve (held-out): letter_counting@1 (-5.0)",
    ]


def test_summary_says_no_model_was_promoted_yet(db_path, tmp_path, capsys):
    wh = Warehouse(db_path)
    store_mix(wh)
    reg = Registry(wh)
    row = register_candidate(reg, tmp_path / "models")
    reg.decide(row["model_id"], "rejected", "NO_GAIN")
    assert cli(["--db", db_path, "summary"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("improvement")] == [
        "improvement: no model promoted yet; the base model serves"
    ]


def store_generation(wh: Warehouse, last_s: float, latency_s: float) -> None:
    """raw_candidates and verified_set of generation 1, gcd@1: six samples of four tasks (answers
    6, 9, 4, 8), the same right answer three times; every sample ends at t0 + latency_s, the last
    one at t0 + last_s."""
    from datetime import UTC, datetime, timedelta

    from synth_assets.core.generators.generation import CANDIDATE_SCHEMA
    from synth_assets.core.tasks.sources import conform
    from synth_assets.core.verify.verification import VERDICT_SCHEMA

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    samples = [("gcd/1", "6", "6", "pass")] * 3 + [
        ("gcd/2", "9", "9", "pass"),
        ("gcd/3", "4", "1", "fail"),
        ("gcd/4", "8", "2", "fail"),
    ]
    rows = [
        {"candidate_id": f"c{i}", "generation": 1, "task_id": task, "family": "gcd@1", "answer": ref,
         "extracted_answer": given, "completion": given, "verifier": "reasoning_gym", "verdict": verdict,
         "latency_s": latency_s, "created_at": t0 + timedelta(seconds=last_s if i == len(samples) - 1 else latency_s)}
        for i, (task, ref, given, verdict) in enumerate(samples)
    ]  # fmt: skip
    wh.write_generation("raw_candidates", conform(rows, CANDIDATE_SCHEMA), 1)
    wh.write_generation("verified_set", conform(rows, VERDICT_SCHEMA), 1)


def yield_section(db_path: str, capsys) -> list[str]:
    assert cli(["--db", db_path, "summary"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("distinct verified rows per CPU-minute"))
    return lines[start : start + 3]


def test_summary_prints_distinct_verified_rows_per_cpu_minute_of_the_newest_generation(db_path, monkeypatch, capsys):
    store_generation(Warehouse(db_path), last_s=60, latency_s=10)  # 60 s of sampling
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    # two distinct rows, two solved tasks; each answer has a share of 1/4, so the guesser expects
    # (1 - 0.75**3) + 3 x 0.25 = 1.33 passes: (2 - 1.33) / 2 CPU-minutes = 0.34
    assert yield_section(db_path, capsys) == [
        "distinct verified rows per CPU-minute (generation 1, guessers' expected passes subtracted): 0.34; "
        "distinct solved tasks per CPU-minute: 0.34 (every passing row, repeats included: 2.00)",
        "  CPU: 2.00 min = sampling wall span 60 s x 2 cores",
        "  gcd@1               2 distinct passing rows of 4 passes, 2/4 tasks solved, guessers expect 1.3: "
        "0.34 rows, 0.34 tasks per CPU-minute",
    ]


def test_summary_gives_no_per_cpu_minute_figure_for_a_sampling_that_took_no_time(db_path, capsys):
    store_generation(Warehouse(db_path), last_s=0.2, latency_s=0.0)  # a test double's instant answers
    assert yield_section(db_path, capsys) == [
        "distinct verified rows per CPU-minute (generation 1, guessers' expected passes subtracted): n/a; "
        "distinct solved tasks per CPU-minute: n/a (every passing row, repeats included: n/a)",
        "  CPU: not measured: the sampling took 0.20 s (a test double or the response cache answered)",
        "  gcd@1               2 distinct passing rows of 4 passes, 2/4 tasks solved, guessers expect 1.3: "
        "n/a rows, n/a tasks per CPU-minute",
    ]


def test_summary_prints_the_frontier_the_generation_worked_at(db_path, capsys):
    """Three levels of chain_sum measured for g1, the first two generated at."""
    from synth_assets.core.tasks.sources import conform
    from synth_assets.core.training.frontier import FRONTIER_SCHEMA

    wh = Warehouse(db_path)
    store_generation(wh, last_s=60.0, latency_s=1.0)  # makes generation 1 the newest
    rows = [
        {"model_id": "g1-aaaaaaaaaa", "family": f"chain_sum@{lvl}", "base_family": "chain_sum", "level": lvl,
         "greedy_rate": greedy, "pass_at_k": at_k, "guess_pass_at_k": 0.3, "status": status, "chosen": chosen,
         "generation": 1}
        for lvl, greedy, at_k, status, chosen in [
            (1, 0.5, 0.8, "learnable", True), (2, 0.6, 0.77, "learnable", True), (3, 0.1, 0.12, "guessing", False)
        ]
    ]  # fmt: skip
    wh.write_generation("capability_frontier", conform(rows, FRONTIER_SCHEMA | {"generation": pl.Int64}), 1)
    assert cli(["--db", db_path, "summary"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("capability frontier of g1-aaaaaaaaaa (this generation; * = generated at):")
    assert lines[start + 1 : start + 4] == [
        "  * chain_sum@1         greedy 0.50, pass@k 0.80 (guesser 0.30): learnable",
        "  * chain_sum@2         greedy 0.60, pass@k 0.77 (guesser 0.30): learnable",
        "    chain_sum@3         greedy 0.10, pass@k 0.12 (guesser 0.30): guessing",
    ]
