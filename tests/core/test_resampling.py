"""More samples where none was right (CandidatePlan.resample_unsolved): a task none of whose
first samples passes its own scorer is sampled again, with new seeds; a solved task, and a task
the cheap check cannot judge, is not. Driven by a named generator double whose right answers are
fixed in advance, scored by reasoning-gym's real scorer."""

from collections import Counter

from synth_assets.core.generators.generation import SamplingPlan, run_generation
from synth_assets.core.tasks.sources import reasoning_gym_tasks
from synth_assets.core.verify.verification import scorer_says_right
from tests.doubles import OracleGeneratorDouble, reference_answers

PLAN = SamplingPlan(samples_per_task=2)


def _tasks():
    return reasoning_gym_tasks(["chain_sum@1"], 4, 42)


def test_only_the_tasks_with_no_right_sample_get_more_samples():
    tasks = _tasks()
    ids = tasks["task_id"].to_list()
    # the double knows the answers of the first two tasks only, and gives them at sample 0
    double = OracleGeneratorDouble({k: v for k, v in reference_answers(tasks).items() if k in ids[:2]}, (0,))
    rows = run_generation(tasks, double, PLAN, 1, is_right=scorer_says_right, resample=3)
    assert Counter(rows["task_id"].to_list()) == {ids[0]: 2, ids[1]: 2, ids[2]: 5, ids[3]: 5}


def test_a_later_sample_that_is_right_reaches_the_candidates():
    tasks = _tasks()
    # right only at sample index 3: never among the first two, found by the resampling
    rows = run_generation(
        tasks, OracleGeneratorDouble(reference_answers(tasks), (3,)), PLAN, 1, is_right=scorer_says_right, resample=3
    )
    right = rows.filter(rows["completion"] == " " + rows["answer"])
    assert sorted(right["task_id"].to_list()) == sorted(tasks["task_id"].to_list())


def test_the_extra_samples_are_new_draws():
    tasks = _tasks()
    rows = run_generation(tasks, OracleGeneratorDouble({}, ()), PLAN, 1, is_right=scorer_says_right, resample=3)
    assert (rows.height, rows["seed"].n_unique(), rows["sample_index"].unique().sort().to_list()) == (
        20,
        20,
        [0, 1, 2, 3, 4],
    )


def test_a_task_the_cheap_check_cannot_judge_is_left_alone():
    tasks = _tasks()
    rows = run_generation(tasks, OracleGeneratorDouble({}, ()), PLAN, 1, is_right=lambda _row: None, resample=3)
    assert rows.height == 8


def test_without_the_check_every_task_gets_its_samples_once():
    tasks = _tasks()
    rows = run_generation(tasks, OracleGeneratorDouble({}, ()), PLAN, 1, resample=3)
    assert rows.height == 8


def test_imported_candidates_are_not_resampled(tmp_path):
    import polars as pl

    from synth_assets.core.generators.import_backend import ImportedGenerator

    tasks = _tasks()
    path = tmp_path / "elsewhere.jsonl"
    ids = tasks["task_id"].to_list()
    pl.DataFrame({"task_id": [t for t in ids for _ in range(2)], "completion": ["wrong"] * 8}).write_ndjson(path)
    rows = run_generation(tasks, ImportedGenerator([str(path)]), PLAN, 1, is_right=scorer_says_right, resample=3)
    assert rows.height == 8
