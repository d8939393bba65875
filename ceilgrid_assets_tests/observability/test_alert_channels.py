"""E-mail, PagerDuty and freshness alerts, against real servers on loopback.

E-mail goes to an aiosmtpd server speaking STARTTLS (a self-signed certificate
made with openssl for the test) and requiring a login; PagerDuty events go to
a local HTTP server that answers as the Events API v2 does (202). The freshness
sensor reads a real Postgres event log.
"""

from __future__ import annotations

import json
import logging
import ssl
import subprocess
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

from ceilgrid_assets.defs.observability import notify_check_failure
from ceilgrid_assets.defs.operations.alerts import freshness_failure_alerts
from ceilgrid_assets.dev.postgres import free_port
from ceilgrid_assets.observability import alerts

UI = "https://ceilgrid.example.org"
USER, PASSWORD = "alerts@ceilgrid.example.org", "smtp-s3cr3t"
ROUTING_KEY = "R0UT1NGKEYs3cr3t"


class _Mailbox:
    """aiosmtpd handler: keeps every accepted message."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "message": message_from_bytes(envelope.content),
                "tls": session.ssl is not None,
            }
        )
        return "250 OK"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any):
    ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def smtp_server(certificate: tuple[Path, Path]) -> Iterator[tuple[int, _Mailbox]]:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    mailbox = _Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=_authenticate,
        auth_required=True,
    )
    controller.start()
    yield port, mailbox
    controller.stop()


@pytest.fixture
def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """The client trusts the test's own certificate, and verifies it like any other."""
    return ssl.create_default_context(cafile=str(certificate[0]))


class _EventsApi(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append({"path": self.path, "payload": json.loads(body)})
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status":"success","message":"Event processed"}')

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def pagerduty() -> Iterator[tuple[str, type[_EventsApi]]]:
    _EventsApi.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EventsApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v2/enqueue", _EventsApi
    server.shutdown()
    server.server_close()


def _failed_check() -> alerts.Alert:
    return alerts.check_failure_alert(
        "promoted_models",
        "not_worse_than_current",
        "run-1234",
        blocking=True,
        description="compliance 97 % < 100 %",
        base_url=UI,
    )


def test_email_is_delivered_over_starttls_with_login(smtp_server, client_tls) -> None:
    port, mailbox = smtp_server
    channel = alerts.EmailChannel(
        host="127.0.0.1",
        port=port,
        sender="ceilgrid@example.org",
        recipients=("oncall@example.org", "ml@example.org"),
        user=USER,
        password=PASSWORD,
        context=client_tls,
    )
    channel.send(_failed_check())
    [mail] = mailbox.messages
    assert mail["tls"] is True
    assert mail["from"] == "ceilgrid@example.org"
    assert mail["to"] == ["oncall@example.org", "ml@example.org"]
    message = mail["message"]
    assert message["Subject"] == "ceilgrid check failed: promoted_models not_worse_than_current"
    body = message.get_payload(decode=True).decode()
    assert "compliance 97 % < 100 %" in body  # plain text: nothing escaped
    assert f"Open run: {UI}/runs/run-1234" in body
    assert "Severity: ERROR" in body


def test_email_failures_name_the_server_never_the_password(smtp_server, client_tls) -> None:
    port, mailbox = smtp_server
    wrong = alerts.EmailChannel(
        host="127.0.0.1",
        port=port,
        sender="ceilgrid@example.org",
        recipients=("oncall@example.org",),
        user=USER,
        password="not-" + PASSWORD,
        context=client_tls,
    )
    with pytest.raises(alerts.AlertError) as error:
        wrong.send(_failed_check())
    assert "SMTPAuthenticationError" in str(error.value) and f"127.0.0.1:{port}" in str(error.value)
    assert PASSWORD not in str(error.value) and error.value.__cause__ is None
    untrusted = alerts.EmailChannel(  # the system trust store does not know the test's cert
        host="127.0.0.1",
        port=port,
        sender="ceilgrid@example.org",
        recipients=("oncall@example.org",),
        user=USER,
        password=PASSWORD,
    )
    with pytest.raises(alerts.AlertError, match="unreachable"):
        untrusted.send(_failed_check())
    assert mailbox.messages == []


def test_pagerduty_event_is_an_events_v2_trigger(pagerduty) -> None:
    url, api = pagerduty
    channel = alerts.PagerDutyChannel(ROUTING_KEY, url)
    assert ROUTING_KEY not in channel.name and ROUTING_KEY not in repr(channel)
    channel.send(_failed_check())
    [received] = api.received
    assert received["path"] == "/v2/enqueue"
    event = received["payload"]
    assert event["routing_key"] == ROUTING_KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "ceilgrid/check/promoted_models/not_worse_than_current/"
    body = event["payload"]
    assert set(body) >= {"summary", "source", "severity"}  # required by the Events API v2
    assert body["severity"] in {"critical", "error", "warning", "info"}
    assert len(body["summary"]) <= 1024 and body["summary"].startswith("ceilgrid check failed")
    assert body["component"] == "promoted_models"
    assert body["custom_details"]["Error"] == "compliance 97 % < 100 %"
    assert event["links"] == [{"href": f"{UI}/runs/run-1234", "text": "Open run"}]


def test_retries_of_a_run_are_one_pagerduty_incident() -> None:
    first = alerts.run_failure_alert("run-a", "layout_job", base_url=UI)
    retry = alerts.run_failure_alert(
        "run-b", "layout_job", base_url=UI, tags={"dagster/root_run_id": "run-a"}
    )
    assert first.dedup_key == retry.dedup_key == "ceilgrid/run/run-a"


def test_channels_come_from_the_environment() -> None:
    environ = {
        alerts.ENV_WEBHOOK_URL: "https://hooks.example.org/T/B/token",
        alerts.ENV_SMTP_HOST: "smtp.example.org",
        alerts.ENV_SMTP_USER: USER,
        alerts.ENV_SMTP_PASSWORD: PASSWORD,
        alerts.ENV_EMAIL_FROM: "ceilgrid@example.org",
        alerts.ENV_EMAIL_TO: "a@example.org, b@example.org,",
        alerts.ENV_PAGERDUTY_KEY: ROUTING_KEY,
    }
    webhook, email, pager = alerts.configured_channels(environ)
    assert isinstance(email, alerts.EmailChannel)
    assert (email.port, email.security) == (587, "starttls")
    assert email.recipients == ("a@example.org", "b@example.org")
    assert isinstance(pager, alerts.PagerDutyChannel) and pager.url == alerts.PAGERDUTY_EVENTS_URL
    names = " ".join(channel.name + repr(channel) for channel in (webhook, email, pager))
    assert "token" not in names and PASSWORD not in names and ROUTING_KEY not in names
    tls = alerts.configured_channels({**environ, alerts.ENV_SMTP_SECURITY: "tls"})[1]
    assert tls.port == 465
    assert alerts.configured_channels({}) == []
    with pytest.raises(alerts.AlertError, match=alerts.ENV_EMAIL_TO):
        alerts.configured_channels({alerts.ENV_SMTP_HOST: "smtp.example.org"})
    with pytest.raises(alerts.AlertError, match=alerts.ENV_SMTP_SECURITY):
        alerts.configured_channels({**environ, alerts.ENV_SMTP_SECURITY: "ssl3"})


def test_one_alert_reaches_every_configured_channel(
    smtp_server, pagerduty, monkeypatch, caplog
) -> None:
    """Through the sensors' delivery path; the mail server is plain SMTP on loopback here."""
    from aiosmtpd.controller import Controller as PlainController

    mailbox = _Mailbox()
    plain = PlainController(mailbox, hostname="127.0.0.1", port=free_port())
    plain.start()
    try:
        url, api = pagerduty
        monkeypatch.delenv(alerts.ENV_WEBHOOK_URL, raising=False)
        monkeypatch.setenv(alerts.ENV_SMTP_HOST, "127.0.0.1")
        monkeypatch.setenv(alerts.ENV_SMTP_PORT, str(plain.port))
        monkeypatch.setenv(alerts.ENV_SMTP_SECURITY, "none")
        monkeypatch.setenv(alerts.ENV_EMAIL_FROM, "ceilgrid@example.org")
        monkeypatch.setenv(alerts.ENV_EMAIL_TO, "oncall@example.org")
        monkeypatch.setenv(alerts.ENV_PAGERDUTY_KEY, ROUTING_KEY)
        monkeypatch.setenv(alerts.ENV_PAGERDUTY_URL, url)
        evaluation = dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("completed_layout"), check_name="compliant", passed=False
        )
        logger = logging.getLogger("ceilgrid_assets.test.channels")
        with caplog.at_level(logging.INFO, logger="ceilgrid_assets.test.channels"):
            assert notify_check_failure(evaluation, "run-9", logger) is True
    finally:
        plain.stop()
    assert len(mailbox.messages) == 1 and len(api.received) == 1
    assert "sent to email 127.0.0.1" in caplog.text and "sent to pagerduty" in caplog.text
    assert ROUTING_KEY not in caplog.text


def test_freshness_failure_is_alerted_once_per_change(
    postgres_instance: dg.DagsterInstance, pagerduty, monkeypatch
) -> None:
    """The events are those Dagster's freshness daemon reports (the same call it makes)."""
    url, api = pagerduty
    monkeypatch.setenv(alerts.ENV_PAGERDUTY_KEY, ROUTING_KEY)
    monkeypatch.setenv(alerts.ENV_PAGERDUTY_URL, url)
    monkeypatch.setenv(alerts.ENV_UI_URL, UI)
    monkeypatch.delenv(alerts.ENV_WEBHOOK_URL, raising=False)
    monkeypatch.delenv(alerts.ENV_SMTP_HOST, raising=False)

    def change(key: str, previous: FreshnessState, new: FreshnessState) -> None:
        postgres_instance._report_runless_asset_event(  # noqa: SLF001 - as the daemon does
            FreshnessStateChange(
                key=dg.AssetKey(key),
                previous_state=previous,
                new_state=new,
                state_change_timestamp=0.0,
            )
        )

    change("completed_layout", FreshnessState.UNKNOWN, FreshnessState.FAIL)  # before start
    context = dg.build_sensor_context(instance=postgres_instance)
    assert "from now on" in freshness_failure_alerts(context).skip_message
    change("completed_layout", FreshnessState.FAIL, FreshnessState.PASS)
    change("completed_layout", FreshnessState.PASS, FreshnessState.WARN)
    change("completed_layout", FreshnessState.WARN, FreshnessState.FAIL)
    change("promoted_models", FreshnessState.PASS, FreshnessState.WARN)
    context = dg.build_sensor_context(instance=postgres_instance, cursor=context.cursor)
    assert freshness_failure_alerts(context).skip_message == "4 freshness changes, 1 failed"
    again = dg.build_sensor_context(instance=postgres_instance, cursor=context.cursor)
    assert freshness_failure_alerts(again).skip_message == "0 freshness changes, 0 failed"
    [received] = api.received
    event = received["payload"]
    assert event["dedup_key"] == "ceilgrid/freshness/completed_layout"
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["summary"].startswith("ceilgrid freshness failed: completed_layout")
    assert event["links"][0]["href"] == f"{UI}/assets/completed_layout"


def test_freshness_sensor_is_registered() -> None:
    from ceilgrid_assets.definitions import defs

    assert defs.get_sensor_def("ceilgrid_freshness_alerts") is freshness_failure_alerts


def test_half_configured_channel_is_reported_in_the_tick_log(monkeypatch, caplog) -> None:
    monkeypatch.delenv(alerts.ENV_WEBHOOK_URL, raising=False)
    monkeypatch.delenv(alerts.ENV_PAGERDUTY_KEY, raising=False)
    monkeypatch.delenv(alerts.ENV_EMAIL_TO, raising=False)
    monkeypatch.setenv(alerts.ENV_SMTP_HOST, "smtp.example.org")
    monkeypatch.setenv(alerts.ENV_SMTP_PASSWORD, PASSWORD)
    evaluation = dg.AssetCheckEvaluation(asset_key=dg.AssetKey("a"), check_name="c", passed=False)
    logger = logging.getLogger("ceilgrid_assets.test.half")
    with caplog.at_level(logging.INFO, logger="ceilgrid_assets.test.half"):
        assert notify_check_failure(evaluation, None, logger) is False
    assert "alert settings invalid" in caplog.text and alerts.ENV_EMAIL_TO in caplog.text
    assert PASSWORD not in caplog.text
