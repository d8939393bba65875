"""Webhook alerts: payloads, delivery to a real local HTTP server, failures logged not raised."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import pytest

from ceilgrid_assets.defs.observability import (
    notify_check_failure,
    notify_run_failure,
)
from ceilgrid_assets.defs.operations.alerts import check_failure_alerts
from ceilgrid_assets.observability import alerts

UI = "https://ceilgrid.example.org"


class _Receiver(BaseHTTPRequestHandler):
    status = 200
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(
            {
                "path": self.path,
                "content_type": self.headers["Content-Type"],
                "payload": json.loads(body),
            }
        )
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def webhook() -> Iterator[tuple[str, type[_Receiver]]]:
    """A Slack-like receiver on 127.0.0.1; the secret token is in the path, as with Slack."""
    _Receiver.status, _Receiver.received = 200, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/services/T000/B000/s3cr3t-token", _Receiver
    server.shutdown()
    server.server_close()


def test_run_failure_payload_is_slack_compatible_and_links_the_run() -> None:
    payload = alerts.slack_payload(
        alerts.run_failure_alert(
            "0123456789abcdef",
            "layout_job",
            "completed_layout: <boom> & more",
            base_url=UI + "/",
            tags={"dagster/partition": "b-1", "dagster/parent_run_id": "p-1"},
        )
    )
    assert payload["text"].startswith("ceilgrid run failed: layout_job")
    assert f"{UI}/runs/0123456789abcdef" in payload["text"]
    types = [block["type"] for block in payload["blocks"]]
    assert types == ["header", "section", "section", "section", "actions"]
    fields = " ".join(field["text"] for field in payload["blocks"][2]["fields"])
    assert "*Partition*\nb-1" in fields and "*Retry of*\np-1" in fields
    assert "&lt;boom&gt; &amp; more" in payload["blocks"][3]["text"]["text"]
    button = payload["blocks"][-1]["elements"][0]
    assert button["url"] == f"{UI}/runs/0123456789abcdef"


def test_ui_url_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(alerts.ENV_UI_URL, "https://dagster.internal/")
    assert alerts.run_link("r1") == "https://dagster.internal/runs/r1"
    monkeypatch.delenv(alerts.ENV_UI_URL)
    assert alerts.run_link("r1") == f"{alerts.DEFAULT_UI_URL}/runs/r1"


def test_long_errors_are_clipped_to_slack_limits() -> None:
    payload = alerts.slack_payload(alerts.run_failure_alert("r", "job", "x" * 10_000, base_url=UI))
    assert all(
        len(block["text"]["text"]) <= 3000
        for block in payload["blocks"]
        if block["type"] == "section" and "text" in block
    )


def test_poster_delivers_the_payload_over_http(webhook) -> None:
    url, receiver = webhook
    payload = alerts.slack_payload(
        alerts.check_failure_alert(
            "promoted_models", "not_worse_than_current", "r-9", blocking=True, base_url=UI
        )
    )
    assert alerts.post_webhook(url, payload) == 200
    [received] = receiver.received
    assert received["path"] == "/services/T000/B000/s3cr3t-token"
    assert received["content_type"] == "application/json"
    assert received["payload"] == payload
    assert "blocking" in payload["blocks"][1]["text"]["text"]


def test_failed_delivery_names_the_host_never_the_token(webhook) -> None:
    url, receiver = webhook
    receiver.status = 500
    with pytest.raises(alerts.AlertError) as error:
        alerts.post_webhook(url, {"text": "x"})
    assert "HTTP 500" in str(error.value) and "s3cr3t" not in str(error.value)
    with pytest.raises(alerts.AlertError, match="unreachable") as error:
        alerts.post_webhook("http://127.0.0.1:9/hooks/s3cr3t", {"text": "x"}, timeout_s=2)
    assert "s3cr3t" not in str(error.value)
    with pytest.raises(alerts.AlertError, match="http"):
        alerts.post_webhook("file:///etc/passwd", {"text": "x"})


@dg.asset
def failing_layout() -> None:
    raise RuntimeError("storage root is read-only")


def _failure_context(instance: dg.DagsterInstance) -> dg.RunFailureSensorContext:
    result = dg.materialize([failing_layout], instance=instance, raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    failure = next(
        event
        for event in instance.all_logs(result.run_id)
        if event.dagster_event is not None and event.dagster_event.is_run_failure
    )
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_webhook",
        dagster_event=failure.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
    ).for_run_failure()


def test_run_failure_sensor_posts_expected_payload(webhook, monkeypatch, tmp_path) -> None:
    url, receiver = webhook
    monkeypatch.setenv(alerts.ENV_UI_URL, UI)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        context = _failure_context(instance)
        assert notify_run_failure(context, url) is True
        run_id = context.dagster_run.run_id
    [received] = receiver.received
    payload = received["payload"]
    assert payload["text"].startswith("ceilgrid run failed: __ephemeral_asset_job__")
    assert payload["blocks"][-1]["elements"][0]["url"] == f"{UI}/runs/{run_id}"
    assert "storage root is read-only" in payload["blocks"][3]["text"]["text"]


def test_platform_run_failure_sensor_uses_the_poster(webhook, monkeypatch, tmp_path) -> None:
    from ceilgrid_assets.defs.operations.alerts import run_failure_webhook
    from ceilgrid_assets.defs.resources import WebhookConfig

    url, receiver = webhook
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        run_failure_webhook(_failure_context(instance), webhook=WebhookConfig(url=url))
    [received] = receiver.received
    assert received["payload"]["text"].startswith("ceilgrid run failed")


def test_unreachable_webhook_is_logged_and_does_not_break_the_sensor(capfd, tmp_path) -> None:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        context = _failure_context(instance)
        capfd.readouterr()
        assert notify_run_failure(context, "http://127.0.0.1:9/hooks/s3cr3t") is False
    logged = capfd.readouterr().err  # the sensor's log manager: the tick log in the UI
    assert "run_failure alert not delivered" in logged and "unreachable" in logged
    assert "s3cr3t" not in logged


@dg.asset
def promoted_candidate() -> int:
    return 1


@dg.asset_check(asset=promoted_candidate, blocking=True)
def not_worse_than_current() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, description="compliance 97 % < 100 %")


def test_failed_blocking_check_is_alerted_once(webhook, monkeypatch, tmp_path) -> None:
    url, receiver = webhook
    monkeypatch.setenv(alerts.ENV_WEBHOOK_URL, url)
    monkeypatch.setenv(alerts.ENV_UI_URL, UI)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = check_failure_alerts(dg.build_sensor_context(instance=instance))
        assert "from now on" in first.skip_message
        result = dg.materialize(
            [promoted_candidate, not_worse_than_current], instance=instance, raise_on_error=False
        )
        context = dg.build_sensor_context(instance=instance, cursor="0")
        check_failure_alerts(context)
        again = dg.build_sensor_context(instance=instance, cursor=context.cursor)
        check_failure_alerts(again)  # nothing new: no second alert
    [received] = receiver.received
    payload = received["payload"]
    assert payload["text"].startswith(
        "ceilgrid check failed: promoted_candidate not_worse_than_current"
    )
    assert payload["blocks"][-1]["elements"][0]["url"] == f"{UI}/runs/{result.run_id}"
    assert "compliance 97 % &lt; 100 %" in json.dumps(payload)
    assert "blocking" in payload["blocks"][1]["text"]["text"]


def test_check_failure_without_webhook_is_reported_not_posted(caplog) -> None:
    evaluation = dg.AssetCheckEvaluation(asset_key=dg.AssetKey("a"), check_name="c", passed=False)
    logger = logging.getLogger("ceilgrid_assets.test.sensor")
    with caplog.at_level(logging.INFO, logger="ceilgrid_assets.test.sensor"):
        assert notify_check_failure(evaluation, None, logger, url=None) is False
    assert alerts.ENV_WEBHOOK_URL in caplog.text
