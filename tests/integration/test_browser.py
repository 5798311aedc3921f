"""The UI as users drive it: dagster-webserver and dagster-daemon on localhost with a temporary
DAGSTER_HOME, headless Debian Chromium driven by Playwright. Materialize every asset from the
UI (the smoke_generation job) as generation 1, a new partition added in the launch dialog, wait
for the run to succeed, open the drift report's checks and its generations, switch the nightly
schedule on.
Screenshots go to test-artifacts/browser/ (kept by CI as artifacts)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.dagster_ui import free_port, gql, wait_for_location, wait_for_server

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROME_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
LOCATION = {"repositoryLocationName": "synth_platform", "repositoryName": "__repository__"}

pytestmark = [pytest.mark.slow, pytest.mark.model]  # the UI's run generates with the embedded model


@pytest.fixture
def dagster_ui(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: bash scripts/quickstart.sh test installs it (apt-get install -y chromium)")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SYNTH_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "SYNTH_NIGHTLY_STATUS": "stopped",
    }
    port = free_port()
    bin_dir = Path(sys.executable).parent
    logs = tmp_path / "logs"
    logs.mkdir()
    # The webserver and the daemon each start code servers that open the SQLite schedule storage;
    # on an empty DAGSTER_HOME two of them can stamp its alembic version at once, and every later
    # open fails with "more than one head" (CI, stop 27). Create the storage once first, as a user
    # running the two as services does (README) and as `dagster dev` does in its parent process.
    subprocess.run(
        [str(bin_dir / "dagster"), "instance", "migrate"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=open(logs / "migrate.log", "w"),
    )
    procs = [
        subprocess.Popen(
            [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=open(logs / "webserver.log", "w"),
        ),
        subprocess.Popen(
            [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=open(logs / "daemon.log", "w"),
        ),
    ]
    try:
        wait_for_server(port, seconds=120, log=logs / "webserver.log")
        wait_for_location(port)
        yield port, logs
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def dismiss_first_visit_modal(page) -> None:
    """A new DAGSTER_HOME greets its first visitor with a community sign-up modal: skip it."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=5_000)
        skip.click()
    except Exception:  # noqa: BLE001 - no modal this time
        pass


def visible(page, text: str):
    """The first *visible* element with this text (Dagster also renders hidden measuring copies)."""
    return page.locator(f":text({json.dumps(text)}):visible").first


def latest_run(port: int) -> dict | None:
    runs = gql(port, "{ runsOrError(limit: 1) { ... on Runs { results { runId status } } } }")["runsOrError"]["results"]
    return runs[0] if runs else None


def test_materialize_review_checks_and_schedule_from_the_ui(dagster_ui):
    from playwright.sync_api import sync_playwright

    port, logs = dagster_ui
    base = f"http://127.0.0.1:{port}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            drive_the_ui(page, port, base)
        except Exception:
            shot(page, "failure")
            for name in ("webserver.log", "daemon.log"):
                print(f"--- {name} ---\n" + (logs / name).read_text()[-4000:])
            raise
        finally:
            browser.close()
    assert len(list(SHOTS.glob("*.png"))) >= 9


def drive_the_ui(page, port: int, base: str) -> None:
    """Materialize all, wait for success, read the checks, open the chart, switch the schedule on."""
    # the smoke_generation job: the whole graph with the smoke sizes as its config (about a minute)
    page.goto(f"{base}/locations/synth_platform/jobs/smoke_generation")
    button = page.get_by_role("button", name="Materialize all")
    button.wait_for(timeout=120_000)  # a cold Chromium profile loads the UI bundle slowly
    dismiss_first_visit_modal(page)
    page.wait_for_timeout(1500)
    shot(page, "01_asset_graph")
    button.click()
    # generations are partitions: the launch dialog asks for one; add generation 1 and launch it
    add = page.get_by_text("Add a partition")
    add.wait_for()
    page.wait_for_timeout(1000)
    add.click()
    save = page.get_by_role("button", name="Save")
    save.wait_for()
    page.wait_for_timeout(500)
    page.keyboard.type("1")
    page.wait_for_timeout(500)
    save.click()
    launch = page.get_by_role("button", name="Launch 1 run")
    launch.wait_for()
    shot(page, "01b_launch_generation_1")
    launch.click()

    run = None
    for _ in range(600):  # the smoke profile takes about a minute; allow ten
        run = latest_run(port)
        if run and run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    assert run and run["status"] == "SUCCESS", run
    page.goto(f"{base}/runs/{run['runId']}")
    visible(page, "Success").wait_for()
    page.wait_for_timeout(1500)
    shot(page, "02_run_succeeded")

    page.goto(f"{base}/assets/drift_report?view=checks")
    visible(page, "no_failed_drift_metric").wait_for()
    page.wait_for_timeout(1500)
    shot(page, "03_drift_report_checks")
    body = page.inner_text("body")
    assert "no_failed_drift_metric" in body
    checks = gql(
        port,
        """{ assetNodes(assetKeys: [{path: ["drift_report"]}]) { assetChecksOrError {
        ... on AssetChecks { checks { name executionForLatestMaterialization { status } } } } } }""",
    )
    statuses = {
        c["name"]: c["executionForLatestMaterialization"]["status"]
        for c in checks["assetNodes"][0]["assetChecksOrError"]["checks"]
    }
    # the first generation is the baseline: no drift metric can fail against itself
    assert statuses and set(statuses.values()) == {"SUCCEEDED"}, statuses

    page.goto(f"{base}/assets/drift_report?view=partitions")
    visible(page, "Materialized (1)").wait_for()  # generation 1, materialized
    page.wait_for_timeout(1500)
    shot(page, "03b_drift_report_generations")

    page.goto(f"{base}/assets/drift_report?view=events")
    visible(page, "diversity_chart").wait_for()
    page.wait_for_timeout(1500)
    shot(page, "04_drift_report_event_metadata")
    row = page.locator("tr", has_text="diversity_chart").first
    row.get_by_text("Show Markdown").click()
    page.locator("img[src^='data:image/png;base64,']").first.wait_for()
    page.wait_for_timeout(1000)
    shot(page, "05_diversity_chart")
    page.keyboard.press("Escape")

    page.goto(f"{base}/locations/synth_platform/schedules/nightly_regeneration_schedule")
    # Blueprint's switch: a hidden input inside a styled label in the "Running" row
    toggle = page.locator("tr", has_text="Running").locator("label").first
    toggle.wait_for()
    page.wait_for_timeout(1000)
    shot(page, "06_schedule_off")
    toggle.click()
    for _ in range(60):
        state = gql(
            port,
            """query($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) {
            ... on Schedule { scheduleState { status } } } }""",
            {"s": {**LOCATION, "scheduleName": "nightly_regeneration_schedule"}},
        )
        if state["scheduleOrError"]["scheduleState"]["status"] == "RUNNING":
            break
        time.sleep(0.5)
    assert state["scheduleOrError"]["scheduleState"]["status"] == "RUNNING"
    page.wait_for_timeout(1000)
    shot(page, "07_schedule_on")
