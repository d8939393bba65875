"""Webhook alerts: Slack-compatible payloads that link to the run in the Dagster UI.

The payload has a plain ``text`` (shown in notifications and by non-Slack
receivers such as Mattermost or a generic webhook relay) and ``blocks`` for
Slack's layout. The webhook URL is a secret (Slack puts the token in the
path): it is read from the environment and never logged, only its host.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

log = logging.getLogger(__name__)

ENV_WEBHOOK_URL = "CEILGRID_ALERT_WEBHOOK_URL"
ENV_UI_URL = "CEILGRID_UI_URL"
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


def _payload(
    title: str,
    summary: str,
    fields: Mapping[str, str | None],
    detail: str | None,
    link: str,
    link_label: str,
) -> dict[str, Any]:
    shown = {name: value for name, value in fields.items() if value}
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(_escape(summary))}},
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
    if detail:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip("```" + _escape(detail) + "```")},
            }
        )
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": link_label}, "url": link}
            ],
        }
    )
    return {"text": f"{title}: {summary} {link}", "blocks": blocks}


def run_failure_payload(
    run_id: str,
    job_name: str,
    error: str | None = None,
    *,
    partition_key: str | None = None,
    base_url: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Payload for a failed Dagster run, with a button to the run page."""
    tags = tags or {}
    fields = {
        "Job": job_name,
        "Run": run_id,
        "Partition": partition_key or tags.get("dagster/partition"),
        "Retry of": tags.get("dagster/parent_run_id"),
    }
    return _payload(
        title=f"ceilgrid run failed: {job_name}",
        summary=f"Run {run_id[:8]} of job {job_name} failed.",
        fields=fields,
        detail=error,
        link=run_link(run_id, base_url),
        link_label="Open run",
    )


def check_failure_payload(
    asset_key: str,
    check_name: str,
    run_id: str | None,
    *,
    severity: str = "ERROR",
    blocking: bool = False,
    description: str | None = None,
    partition_key: str | None = None,
    base_url: str | None = None,
) -> dict[str, Any]:
    """Payload for a failed asset check; a blocking one means downstream did not run."""
    consequence = (
        " It is blocking: downstream assets (e.g. model promotion) were not materialized."
        if blocking
        else ""
    )
    base = (base_url or ui_url()).rstrip("/")
    link = run_link(run_id, base) if run_id else f"{base}/assets/{quote(asset_key, safe='/')}"
    return _payload(
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
    )


def redact(url: str) -> str:
    """What of a webhook URL may appear in logs: scheme and host."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"


def post_webhook(url: str, payload: Mapping[str, Any], timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
    """POST the payload as JSON; returns the HTTP status, raises :class:`AlertError`."""
    if urlsplit(url).scheme not in {"http", "https"}:
        raise AlertError(f"webhook URL must be http(s), got scheme {urlsplit(url).scheme!r}")
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
        raise AlertError(f"webhook {redact(url)} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AlertError(f"webhook {redact(url)} unreachable: {reason}") from None
    log.info("alert posted to %s (HTTP %s)", redact(url), status)
    return status
