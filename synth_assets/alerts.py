"""Every failed check, warnings included, recorded in DuckDB and posted to a webhook.

OSS Dagster 1.13 has no asset-check sensor, so a plain sensor polls the event log for the
latest execution of each check and remembers (in its cursor) which executions it has already
alerted on. Each new failure becomes a row of ``synth.alerts`` and, when
``SYNTH_ALERT_WEBHOOK_URL`` is set, a JSON POST to that URL (retried; a webhook outage is
logged and the alert stays in DuckDB).
"""

import json
import os
import urllib.request
from datetime import UTC, datetime

import dagster as dg
import polars as pl
from tenacity import retry, stop_after_attempt, wait_exponential

ALERT_SCHEMA = {
    "alert_id": pl.String,
    "raised_at": pl.Datetime("us", "UTC"),
    "asset": pl.String,
    "check_name": pl.String,
    "severity": pl.String,
    "run_id": pl.String,
    "description": pl.String,
    "metadata": pl.String,
}


@retry(stop=stop_after_attempt(3), wait=wait_exponential(multiplier=0.5, max=4), reraise=True)
def post_webhook(url: str, payload: dict) -> int:
    req = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def failed_check_alerts(instance: dg.DagsterInstance, check_keys: list[dg.AssetCheckKey], seen: dict) -> list[dict]:
    """New failed executions of the given checks (``seen`` maps a check to the last one alerted)."""
    out = []
    for key in check_keys:
        rec = instance.get_latest_asset_check_evaluation_record(key)
        if rec is None or getattr(rec.status, "value", rec.status) != "FAILED":
            continue
        name = key.to_user_string()
        if seen.get(name) == rec.id:
            continue
        seen[name] = rec.id
        evaluation = rec.event.asset_check_evaluation if rec.event is not None else None
        severity = getattr(getattr(evaluation, "severity", None), "value", "ERROR")
        meta = {k: str(getattr(v, "value", v))[:500] for k, v in (getattr(evaluation, "metadata", None) or {}).items()}
        out.append(
            {
                "alert_id": f"{name}/{rec.id}",
                "raised_at": datetime.now(UTC),
                "asset": key.asset_key.to_user_string(),
                "check_name": key.name,
                "severity": severity,
                "run_id": rec.run_id,
                "description": getattr(evaluation, "description", None) or "",
                "metadata": json.dumps(meta),
            }
        )
    return out


def build_alert_sensor(check_keys: list[dg.AssetCheckKey]) -> dg.SensorDefinition:
    @dg.sensor(
        name="quality_check_alerts",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Records every failed asset check (warnings included) in synth.alerts and posts it to "
        "SYNTH_ALERT_WEBHOOK_URL when set.",
    )
    def quality_check_alerts(context: dg.SensorEvaluationContext, warehouse: dg.ConfigurableResource) -> dg.SkipReason:
        seen = json.loads(context.cursor) if context.cursor else {}
        alerts = failed_check_alerts(context.instance, check_keys, seen)
        if not alerts:
            return dg.SkipReason("no new failed checks")
        wh = warehouse.get()  # the platform's WarehouseResource (typed loosely: this package imports only the core)
        wh.append("alerts", pl.DataFrame(alerts, schema=ALERT_SCHEMA))
        url = os.environ.get("SYNTH_ALERT_WEBHOOK_URL")
        for a in alerts:
            context.log.warning(f"{a['severity']} check failed: {a['asset']} / {a['check_name']} (run {a['run_id']})")
            if url:
                try:
                    post_webhook(url, {**a, "raised_at": a["raised_at"].isoformat()})
                except Exception as exc:  # noqa: BLE001 - the alert is in DuckDB either way
                    context.log.error(f"webhook {url} failed for {a['alert_id']}: {exc}")
        context.update_cursor(json.dumps(seen))
        return dg.SkipReason(f"recorded {len(alerts)} failed checks")

    return quality_check_alerts
