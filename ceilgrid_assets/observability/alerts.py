"""Alerts: one :class:`Alert`, delivered to a webhook, e-mail (SMTP) and PagerDuty.

Each channel is switched on by its environment variables (:func:`configured_channels`):

- webhook: Slack-compatible payload, a plain ``text`` (shown in notifications
  and by non-Slack receivers such as Mattermost or a generic relay) and
  ``blocks`` for Slack's layout;
- e-mail: a plain-text message over SMTP (STARTTLS by default, implicit TLS or,
  for a relay on the same host only, none), with optional login;
- PagerDuty: an Events API v2 ``trigger`` whose ``dedup_key`` groups repeats of
  one incident (the same run, check or asset).

Webhook URLs, the SMTP password and the PagerDuty routing key are secrets: they
are read from the environment and never logged; errors name only the host.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

log = logging.getLogger(__name__)

ENV_WEBHOOK_URL = "CEILGRID_ALERT_WEBHOOK_URL"
ENV_UI_URL = "CEILGRID_UI_URL"
ENV_SMTP_HOST = "CEILGRID_ALERT_SMTP_HOST"
ENV_SMTP_PORT = "CEILGRID_ALERT_SMTP_PORT"
ENV_SMTP_SECURITY = "CEILGRID_ALERT_SMTP_SECURITY"
ENV_SMTP_USER = "CEILGRID_ALERT_SMTP_USER"
ENV_SMTP_PASSWORD = "CEILGRID_ALERT_SMTP_PASSWORD"
ENV_EMAIL_FROM = "CEILGRID_ALERT_EMAIL_FROM"
ENV_EMAIL_TO = "CEILGRID_ALERT_EMAIL_TO"
ENV_PAGERDUTY_KEY = "CEILGRID_ALERT_PAGERDUTY_ROUTING_KEY"
ENV_PAGERDUTY_URL = "CEILGRID_ALERT_PAGERDUTY_URL"
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SMTP_SECURITY = {"starttls": 587, "tls": 465, "none": 25}
DEFAULT_UI_URL = "http://127.0.0.1:3000"
DEFAULT_TIMEOUT_S = 10.0
#: Slack rejects section text longer than 3000 characters.
MAX_SECTION_CHARS = 2900


class AlertError(RuntimeError):
    """A webhook could not be delivered; the message names the host, never the URL."""


def ui_url(environ: Mapping[str, str] | None = None) -> str:
    """Base URL of the Dagster UI as users reach it (behind the proxy in production)."""
    environ = os.environ if environ is None else environ
    return (environ.get(ENV_UI_URL) or DEFAULT_UI_URL).rstrip("/")


def webhook_url(environ: Mapping[str, str] | None = None) -> str | None:
    environ = os.environ if environ is None else environ
    return environ.get(ENV_WEBHOOK_URL) or None


def run_link(run_id: str, base_url: str | None = None) -> str:
    return f"{(base_url or ui_url()).rstrip('/')}/runs/{quote(run_id, safe='')}"


def _escape(text: str) -> str:
    """Slack mrkdwn treats ``&``, ``<`` and ``>`` as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int = MAX_SECTION_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Alert:
    """What every channel renders: a title, a one-line summary, fields and a link.

    ``dedup_key`` names the incident (PagerDuty folds repeats of one key into one
    incident); ``severity`` is PagerDuty's (critical, error, warning, info).
    """

    title: str
    summary: str
    link: str
    link_label: str
    dedup_key: str
    fields: Mapping[str, str | None] = field(default_factory=dict)
    detail: str | None = None
    severity: str = "error"

    @property
    def shown_fields(self) -> dict[str, str]:
        return {name: value for name, value in self.fields.items() if value}


def slack_payload(alert: Alert) -> dict[str, Any]:
    """The webhook body: ``text`` for any receiver, ``blocks`` for Slack."""
    shown = alert.shown_fields
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(alert.title, 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(_escape(alert.summary))}},
    ]
    if shown:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{name}*\n{_clip(_escape(value), 1900)}"}
                    for name, value in list(shown.items())[:10]
                ],
            }
        )
    if alert.detail:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip("```" + _escape(alert.detail) + "```")},
            }
        )
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": alert.link_label},
                    "url": alert.link,
                }
            ],
        }
    )
    return {"text": f"{alert.title}: {alert.summary} {alert.link}", "blocks": blocks}


def pagerduty_payload(alert: Alert, routing_key: str) -> dict[str, Any]:
    """A PagerDuty Events API v2 ``trigger`` event (summary at most 1024 characters)."""
    details = dict(alert.shown_fields)
    if alert.detail:
        details["Error"] = _clip(alert.detail)
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.dedup_key,
        "payload": {
            "summary": _clip(f"{alert.title}: {alert.summary}", 1024),
            "source": "ceilgrid",
            "severity": alert.severity,
            "component": alert.fields.get("Asset") or alert.fields.get("Job") or "ceilgrid",
            "custom_details": details,
        },
        "links": [{"href": alert.link, "text": alert.link_label}],
    }


def email_message(alert: Alert, sender: str, recipients: list[str]) -> EmailMessage:
    """A plain-text e-mail: summary, fields, the error and the link."""
    message = EmailMessage()
    message["Subject"] = alert.title
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    lines = [alert.summary, ""]
    lines += [f"{name}: {value}" for name, value in alert.shown_fields.items()]
    if alert.detail:
        lines += ["", alert.detail]
    lines += ["", f"{alert.link_label}: {alert.link}"]
    message.set_content("\n".join(lines))
    return message


def run_failure_alert(
    run_id: str,
    job_name: str,
    error: str | None = None,
    *,
    partition_key: str | None = None,
    base_url: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Alert:
    """A failed Dagster run, linking the run page; retries of a run share its incident."""
    tags = tags or {}
    fields = {
        "Job": job_name,
        "Run": run_id,
        "Partition": partition_key or tags.get("dagster/partition"),
        "Retry of": tags.get("dagster/parent_run_id"),
    }
    return Alert(
        title=f"ceilgrid run failed: {job_name}",
        summary=f"Run {run_id[:8]} of job {job_name} failed.",
        fields=fields,
        detail=error,
        link=run_link(run_id, base_url),
        link_label="Open run",
        dedup_key=f"ceilgrid/run/{tags.get('dagster/root_run_id') or run_id}",
    )


def check_failure_alert(
    asset_key: str,
    check_name: str,
    run_id: str | None,
    *,
    severity: str = "ERROR",
    blocking: bool = False,
    description: str | None = None,
    partition_key: str | None = None,
    base_url: str | None = None,
) -> Alert:
    """A failed asset check; a blocking one means downstream did not run."""
    consequence = (
        " It is blocking: downstream assets (e.g. model promotion) were not materialized."
        if blocking
        else ""
    )
    base = (base_url or ui_url()).rstrip("/")
    link = run_link(run_id, base) if run_id else f"{base}/assets/{quote(asset_key, safe='/')}"
    return Alert(
        title=f"ceilgrid check failed: {asset_key} {check_name}",
        summary=f"Asset check {check_name} on {asset_key} failed ({severity}).{consequence}",
        fields={
            "Asset": asset_key,
            "Check": check_name,
            "Severity": severity,
            "Partition": partition_key,
            "Run": run_id,
        },
        detail=description,
        link=link,
        link_label="Open run" if run_id else "Open asset",
        dedup_key=f"ceilgrid/check/{asset_key}/{check_name}/{partition_key or ''}",
        severity="error" if severity == "ERROR" else "warning",
    )


def freshness_failure_alert(
    asset_key: str, previous_state: str, *, base_url: str | None = None
) -> Alert:
    """An asset failing its freshness policy (its SLA): no new materialization in time."""
    base = (base_url or ui_url()).rstrip("/")
    return Alert(
        title=f"ceilgrid freshness failed: {asset_key}",
        summary=f"{asset_key} is older than its freshness policy allows "
        f"(was {previous_state.lower()}).",
        fields={"Asset": asset_key, "Previous state": previous_state},
        link=f"{base}/assets/{quote(asset_key, safe='/')}",
        link_label="Open asset",
        dedup_key=f"ceilgrid/freshness/{asset_key}",
        severity="critical",
    )


def redact(url: str) -> str:
    """What of a secret URL may appear in logs: scheme and host."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"


def post_webhook(
    url: str,
    payload: Mapping[str, Any],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    what: str = "webhook",
) -> int:
    """POST the payload as JSON; returns the HTTP status, raises :class:`AlertError`."""
    if urlsplit(url).scheme not in {"http", "https"}:
        raise AlertError(f"{what} URL must be http(s), got scheme {urlsplit(url).scheme!r}")
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "ceilgrid-alerts"},
    )
    # The causes are dropped from the chain: HTTPError carries the full URL.
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        raise AlertError(f"{what} {redact(url)} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AlertError(f"{what} {redact(url)} unreachable: {reason}") from None
    log.info("alert posted to %s (HTTP %s)", redact(url), status)
    return status


class Channel(Protocol):
    """Somewhere an alert goes; ``name`` is safe to log (no secret in it)."""

    name: str

    def send(self, alert: Alert) -> None:
        """Deliver or raise :class:`AlertError`."""


@dataclass(frozen=True)
class WebhookChannel:
    url: str = field(repr=False)

    @property
    def name(self) -> str:
        return f"webhook {redact(self.url)}"

    def send(self, alert: Alert) -> None:
        post_webhook(self.url, slack_payload(alert))


@dataclass(frozen=True)
class PagerDutyChannel:
    """Events API v2; the integration's routing key is the secret."""

    routing_key: str = field(repr=False)
    url: str = PAGERDUTY_EVENTS_URL

    @property
    def name(self) -> str:
        return f"pagerduty {redact(self.url)}"

    def send(self, alert: Alert) -> None:
        post_webhook(self.url, pagerduty_payload(alert, self.routing_key), what="pagerduty")


@dataclass(frozen=True)
class EmailChannel:
    """SMTP submission; ``security`` is ``starttls`` (default), ``tls`` or ``none``."""

    host: str
    sender: str
    recipients: tuple[str, ...]
    port: int = 587
    security: str = "starttls"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S
    context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return f"email {self.host}:{self.port} ({len(self.recipients)} recipients)"

    def send(self, alert: Alert) -> None:
        message = email_message(alert, self.sender, list(self.recipients))
        context = self.context or ssl.create_default_context()
        # Errors are re-raised without their cause: SMTP replies can echo credentials.
        try:
            if self.security == "tls":
                client = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout_s, context=context
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with client:
                if self.security == "starttls":
                    client.starttls(context=context)
                if self.user:
                    client.login(self.user, self.password or "")
                client.send_message(message)
        except smtplib.SMTPException as exc:
            raise AlertError(f"{self.name}: {type(exc).__name__}") from None
        except OSError as exc:  # ssl.SSLError included
            raise AlertError(f"{self.name} unreachable: {exc.strerror or exc}") from None
        log.info("alert mailed through %s", self.name)


def configured_channels(environ: Mapping[str, str] | None = None) -> list[Channel]:
    """Every channel whose variables are set (none: alerts are only logged).

    Raises :class:`AlertError` on a half-configured or invalid channel, so a
    deployment learns of it on the first alert's tick rather than never.
    """
    environ = os.environ if environ is None else environ
    channels: list[Channel] = []
    if url := webhook_url(environ):
        channels.append(WebhookChannel(url))
    if host := environ.get(ENV_SMTP_HOST):
        security = environ.get(ENV_SMTP_SECURITY, "starttls").lower()
        if security not in SMTP_SECURITY:
            raise AlertError(f"{ENV_SMTP_SECURITY} must be one of {', '.join(SMTP_SECURITY)}")
        recipients = tuple(
            address.strip()
            for address in environ.get(ENV_EMAIL_TO, "").split(",")
            if address.strip()
        )
        sender = environ.get(ENV_EMAIL_FROM)
        if not recipients or not sender:
            raise AlertError(f"{ENV_SMTP_HOST} needs {ENV_EMAIL_FROM} and {ENV_EMAIL_TO}")
        channels.append(
            EmailChannel(
                host=host,
                port=int(environ.get(ENV_SMTP_PORT) or SMTP_SECURITY[security]),
                security=security,
                sender=sender,
                recipients=recipients,
                user=environ.get(ENV_SMTP_USER) or None,
                password=environ.get(ENV_SMTP_PASSWORD) or None,
            )
        )
    if key := environ.get(ENV_PAGERDUTY_KEY):
        channels.append(
            PagerDutyChannel(key, environ.get(ENV_PAGERDUTY_URL) or PAGERDUTY_EVENTS_URL)
        )
    return channels
