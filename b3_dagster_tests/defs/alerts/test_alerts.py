"""Alerts: which days are due (sessions only), the Slack-compatible messages, and the two sensors posting to a real
HTTP receiver on 127.0.0.1 (pytest-httpserver): one message per missed session, none for holidays or weekends,
none twice; one per failed run (a real failed run of the raw asset), none for a run that will be retried."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from b3_dagster.errors import AlertConfigError, AlertDeliveryError
from b3_dagster.rules import alerts as alerting
from b3_dagster.rules.alerts import (
    UiLinks,
    due_sessions,
    parse_deadline,
)
from b3_dagster.calendar import B3_TIMEZONE, is_session, weekday_holidays
from b3_dagster.defs.alerts import sensors as alerts_sensors
from b3_dagster.defs import resources as defs_resources
from b3_dagster.defs.portfolio.assets import ibov_raw_snapshot
from b3_dagster.defs.resources import B3PortfolioResource, LakeResource
from b3_dagster.sources.b3_portfolio import B3PortfolioClient
from b3_dagster.sources.http import post_message
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster.storage.lake import LocalLake

SP = ZoneInfo(B3_TIMEZONE)
UI = "http://dagster.test:3000"


def at(day: str, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time.fromisoformat(hhmm), tzinfo=SP)


def first_holiday_after(day: str) -> dt.date:
    return weekday_holidays(day)[0]


def next_session(day: dt.date) -> dt.date:
    day += dt.timedelta(days=1)
    while not is_session(day):
        day += dt.timedelta(days=1)
    return day


# ---- pure rules ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["25:00", "7:5", "12h00", "", "12:60"])
def test_deadline_must_be_hh_mm(bad):
    with pytest.raises(AlertConfigError, match="HH:MM"):
        parse_deadline(bad)


def test_a_day_is_due_only_after_its_deadline_in_sao_paulo():
    deadline = parse_deadline("12:00")
    assert due_sessions(at("2025-04-08", "11:59"), deadline, 1) == [dt.date(2025, 4, 7)]
    assert due_sessions(at("2025-04-08", "12:00"), deadline, 1) == [dt.date(2025, 4, 8)]
    # 14:30 UTC is 11:30 in São Paulo (UTC-3): not yet due
    utc = dt.datetime(2025, 4, 8, 14, 30, tzinfo=dt.timezone.utc)
    assert due_sessions(utc, deadline, 1) == [dt.date(2025, 4, 7)]


def test_weekends_and_holidays_are_never_due():
    holiday = first_holiday_after("2025-04-01")  # derived from the B3 calendar, not typed in
    after = next_session(holiday)
    due = due_sessions(at(after.isoformat(), "23:00"), parse_deadline("12:00"), 10)
    assert len(due) == 10 and due[-1] == after
    assert holiday not in due
    assert all(day.weekday() < 5 and is_session(day) for day in due)
    # every weekday in the span that is missing from `due` is a B3 holiday
    span = [due[0] + dt.timedelta(days=n) for n in range((due[-1] - due[0]).days + 1)]
    skipped_weekdays = {day for day in span if day.weekday() < 5} - set(due)
    assert holiday in skipped_weekdays and skipped_weekdays <= set(weekday_holidays(due[0], due[-1]))


def test_since_bounds_the_window():
    due = due_sessions(at("2025-04-09", "23:00"), parse_deadline("12:00"), 5, since=dt.date(2025, 4, 8))
    assert due == [dt.date(2025, 4, 8), dt.date(2025, 4, 9)]


def test_messages_carry_partition_reason_and_link_in_slack_shape():
    links = UiLinks(UI + "/")
    failure = alerting.run_failure_message(job="ibov_snapshot_job", run_id="abc-123", partition="2025-04-08",
                                           reason="B3 served   another\nday", links=links)
    missed = alerting.missed_day_message(asset="ibov_raw_snapshot", day=dt.date(2025, 4, 8),
                                         deadline=dt.time(12), reason="no raw snapshot", links=links)
    for payload in (failure, missed):
        json.dumps(payload)  # serialisable as sent
        assert isinstance(payload["text"], str) and payload["blocks"][0]["type"] == "header"
        assert "2025-04-08" in payload["text"]
    assert f"{UI}/runs/abc-123" in failure["text"] and "B3 served another day" in failure["text"]
    assert f"{UI}/assets/ibov_raw_snapshot?view=partitions&partition=2025-04-08" in missed["text"]
    assert "12:00 America/Sao_Paulo" in missed["text"]


def test_a_refused_message_raises(httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("no_service", status=404)
    with pytest.raises(AlertDeliveryError, match="404"):
        post_message(httpserver.url_for("/hook"), {"text": "x"})


# ---- the sensors, posting to a real receiver ------------------------------------------------------------------
@pytest.fixture
def receiver(httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    return httpserver


def posted(server) -> list[dict]:
    return [json.loads(request.data) for request, _ in server.log if request.path == "/hook"]


def settings(server, **fields) -> defs_resources.AlertSettings:
    return defs_resources.AlertSettings(webhook_url=server.url_for("/hook"), ui_base_url=UI, **fields)


@pytest.fixture
def recorded_lake(lake_root, serve_recording, recordings):
    """A lake holding the real raw partition of 2025-04-07, written through the real client and store."""
    recording = recordings["2025-04-07"]
    base_url = serve_recording(recording)
    snapshot = B3PortfolioClient(base_url=base_url, language=recording.language).fetch()
    PortfolioStore(LocalLake(lake_root)).write_raw(snapshot)
    return LakeResource(root=str(lake_root))


def run_missed_day_sensor(monkeypatch, now, alert_settings, lake, cursor=None):
    monkeypatch.setattr(alerts_sensors, "_now", lambda: now)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                          resources={"alerts": alert_settings, "lake": lake})
        return alerts_sensors.missed_day_sensor(context)


def test_missed_session_alerts_once_and_a_present_one_never(monkeypatch, receiver, recorded_lake):
    config = settings(receiver, freshness_deadline="12:00", since="2025-04-07")
    result = run_missed_day_sensor(monkeypatch, at("2025-04-08", "12:05"), config, recorded_lake)
    messages = posted(receiver)
    assert len(messages) == 1
    assert "trading day 2025-04-08 missed" in messages[0]["text"] and "2025-04-07" not in messages[0]["text"]
    assert "no run was launched" in messages[0]["text"]
    [evaluation] = result.asset_events
    assert evaluation.check_name == alerts_sensors.FRESHNESS_CHECK and evaluation.passed is False
    # the next tick, with the cursor the daemon would store: nothing new to say, verdict unchanged
    again = run_missed_day_sensor(monkeypatch, at("2025-04-08", "13:05"), config, recorded_lake,
                                  cursor=result.cursor)
    assert len(posted(receiver)) == 1 and again.asset_events == []


def test_holidays_and_weekends_never_alert(monkeypatch, receiver, lake_root):
    holiday = first_holiday_after("2025-04-01")
    after = next_session(holiday)
    # watch from the holiday on, with an empty lake: only the session after the holiday is due and missing
    config = settings(receiver, freshness_deadline="12:00", since=holiday.isoformat(), lookback_sessions=10)
    run_missed_day_sensor(monkeypatch, at(after.isoformat(), "23:00"), config, LakeResource(root=str(lake_root)))
    messages = posted(receiver)
    assert [m["blocks"][0]["text"]["text"] for m in messages] == [f"b3-dagster: trading day {after} missed"]
    # on the holiday itself, late at night: nothing is due, nothing is posted
    run_missed_day_sensor(monkeypatch, at(holiday.isoformat(), "23:00"), config, LakeResource(root=str(lake_root)))
    assert len(posted(receiver)) == 1


def failed_raw_run(instance, base_url, lake_root, partition):
    """A real failed run: the raw asset asks the local replay for ``partition`` and gets another day."""
    return dg.materialize([ibov_raw_snapshot], partition_key=partition, instance=instance, raise_on_error=False,
                          resources={"b3": B3PortfolioResource(base_url=base_url, retries=0),
                                     "lake": LakeResource(root=str(lake_root))})


def run_failure_context(instance, result, alert_settings):
    run = instance.get_run_by_id(result.run_id)
    failure = next(e for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.is_run_failure)
    return dg.build_run_status_sensor_context(sensor_name="ibov_run_failure_notifier", dagster_instance=instance,
                                              dagster_run=run, dagster_event=failure.dagster_event,
                                              resources={"alerts": alert_settings}).for_run_failure()


def test_a_failed_run_alerts_with_partition_reason_and_link(receiver, serve_recording, recordings, lake_root):
    base_url = serve_recording(recordings["2022-12-08"])
    with dg.instance_for_test() as instance:
        result = failed_raw_run(instance, base_url, lake_root, "2022-12-09")
        assert not result.success
        alerts_sensors.run_failure_notifier(run_failure_context(instance, result, settings(receiver)))
    [message] = posted(receiver)
    assert "partition: 2022-12-09" in message["text"]
    assert "2022-12-08" in message["text"]  # the reason: B3 served another day
    assert f"{UI}/runs/{result.run_id}" in message["text"]


def test_a_run_that_will_be_retried_does_not_alert(receiver, serve_recording, recordings, lake_root):
    base_url = serve_recording(recordings["2022-12-08"])
    with dg.instance_for_test() as instance:
        result = failed_raw_run(instance, base_url, lake_root, "2022-12-09")
        instance.add_run_tags(result.run_id, {alerts_sensors.WILL_RETRY_TAG: "true"})
        alerts_sensors.run_failure_notifier(run_failure_context(instance, result, settings(receiver)))
    assert posted(receiver) == []


def test_settings_from_env_keep_the_webhook_secret(monkeypatch):
    monkeypatch.setenv("B3_ALERT_WEBHOOK_URL", "https://hooks.example/secret")
    monkeypatch.setenv("B3_ALERT_LOOKBACK_SESSIONS", "3")
    monkeypatch.delenv("B3_ALERT_SINCE", raising=False)
    config = defs_resources.alert_settings_from_env()
    assert isinstance(config.webhook_url, dg.EnvVar) and config.since is None
    with dg.build_resources({"alerts": config}) as resources:
        assert resources.alerts.webhook_url == "https://hooks.example/secret"
        assert resources.alerts.lookback_sessions == 3


def test_a_refused_webhook_keeps_what_was_delivered_and_retries_the_rest(monkeypatch, httpserver, lake_root):
    """Two missed sessions; the webhook accepts the first and refuses the second: the next tick re-sends only the
    second."""
    from werkzeug import Response

    calls = []

    def flaky(request):
        calls.append(json.loads(request.data)["text"])
        return Response("ok" if len(calls) != 2 else "down", status=200 if len(calls) != 2 else 500)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(flaky)
    config = settings(httpserver, freshness_deadline="12:00", since="2025-04-07")
    lake = LakeResource(root=str(lake_root))
    first = run_missed_day_sensor(monkeypatch, at("2025-04-08", "12:05"), config, lake)
    assert len(calls) == 2 and "2025-04-07" in calls[0] and "2025-04-08" in calls[1]
    run_missed_day_sensor(monkeypatch, at("2025-04-08", "12:10"), config, lake, cursor=first.cursor)
    assert len(calls) == 3 and "2025-04-08" in calls[2], "only the undelivered day is sent again"


# ---- what a reader of an alert sees ---------------------------------------------------------------------------
def test_a_run_launched_from_the_asset_graph_is_named_by_its_assets():
    assert alerting.job_label("ibov_snapshot_job", ["ibov_raw_snapshot"]) == "ibov_snapshot_job"
    label = alerting.job_label("__ASSET_JOB", ["tb_ibov_refined", "ibov_sector_refined"])
    assert label == "assets ibov_sector_refined, tb_ibov_refined" and "__ASSET_JOB" not in label
    assert "and 2 more" in alerting.job_label("__ASSET_JOB_0", [f"a{n}" for n in range(5)])


@pytest.mark.parametrize(("environ", "expected"), [
    ({"B3_DAGSTER_UI_URL": "https://dagster.example.com", "DAGSTER_CLI_DEV_PORT": "3333"},
     "https://dagster.example.com"),
    ({"DAGSTER_CLI_DEV_PORT": "3333"}, "http://localhost:3333"),  # `DAGSTER_CLI_DEV_PORT=3333 dagster dev`
    ({"DAGSTER_WEBSERVER_PORT": "8080"}, "http://localhost:8080"),
    ({}, "http://localhost:3000"),
])
def test_links_point_at_the_ui_the_user_runs(environ, expected):
    assert alerting.ui_base_url(environ) == expected


def test_a_failed_asset_run_alert_does_not_say_asset_job(receiver, serve_recording, recordings, lake_root):
    base_url = serve_recording(recordings["2022-12-08"])
    with dg.instance_for_test() as instance:
        result = failed_raw_run(instance, base_url, lake_root, "2022-12-09")  # dg.materialize: a hidden asset job
        assert instance.get_run_by_id(result.run_id).job_name.startswith("__")
        alerts_sensors.run_failure_notifier(run_failure_context(instance, result, settings(receiver)))
    [message] = posted(receiver)
    assert "run of asset ibov_raw_snapshot failed" in message["text"]
    assert "__ASSET_JOB" not in message["text"] and "__ephemeral" not in message["text"]


def test_a_demo_lake_skips_the_freshness_check_and_the_missed_day_alerts(monkeypatch, receiver, lake_root):
    lake = LakeResource(root=str(lake_root))
    alerts_sensors.mark_demo_lake(lake)
    config = settings(receiver, freshness_deadline="12:00", since="2025-04-07")
    result = run_missed_day_sensor(monkeypatch, at("2025-04-09", "23:00"), config, lake)
    assert isinstance(result, dg.SkipReason) and "demo lake" in result.skip_message
    assert posted(receiver) == []
    defs = dg.Definitions(assets=[ibov_raw_snapshot], asset_checks=[alerts_sensors.raw_snapshot_on_time],
                          jobs=[dg.define_asset_job("freshness", selection=dg.AssetSelection.checks(
                              alerts_sensors.raw_snapshot_on_time))],
                          resources={"alerts": config, "lake": lake, "b3": B3PortfolioResource()})
    with dg.instance_for_test() as instance:
        skipped = defs.resolve_job_def("freshness").execute_in_process(instance=instance)
        assert skipped.success and skipped.get_asset_check_evaluations() == [], "skipped: neither passed nor failed"
        (lake_root / alerts_sensors.DEMO_LAKE_MARKER).unlink()  # the same empty lake, no longer a demo: the days are missing
        checked = defs.resolve_job_def("freshness").execute_in_process(instance=instance, raise_on_error=False)
        [evaluation] = checked.get_asset_check_evaluations()
        assert evaluation.passed is False
