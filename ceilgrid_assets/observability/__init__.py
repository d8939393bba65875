"""Telemetry and alerts, subscribed to the engine's hooks rather than called by it.

:mod:`.telemetry` turns hook events into OpenTelemetry spans, metrics and JSON
logs when the environment asks for them; :mod:`.alerts` sends run failures and
missed freshness to Slack-format webhooks, e-mail and PagerDuty.
"""
