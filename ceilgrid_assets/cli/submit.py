"""``ceilgrid submit``: lay out a building on a remote Dagster webserver.

Only network access to the webserver is needed (no shared disk). Without
``--wait`` (or with ``--batch``) the building JSON is reported as a
materialization of the external asset ``building_submission`` through GraphQL
(``reportRunlessAssetEvents``, the document as the event's description): no
run per building. The inbox sensor stages it like a dropped file and lays it
out in a batched run with other buildings. With ``--wait`` (or ``--run``) the
building gets a run of its own, launched through GraphQL with dagster-graphql
(``addDynamicPartition``, then ``launchRun`` of ``layout_building_job``): a
client waiting for one building does not wait for the sensor's next tick too.
``--wait`` then polls the building's partition of ``completed_layout`` through
GraphQL until a materialization made from this document (metadata
``input_sha256``) carries the layout (``layout``, the file's exact bytes). The
calls are documented in docs/platform.md.

Exit codes: 0 laid out and every room compliant (or submitted, without
``--wait``), 1 a room could not be made compliant, 2 bad input, 3 the server
failed (unreachable, run failed or timed out).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

if TYPE_CHECKING:
    import requests

from ceilgrid_assets.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_NOT_COMPLIANT,
    EXIT_OK,
    EXIT_SERVER,
    report_errors,
)
from ceilgrid_assets.contract import (
    BUILDINGS,
    CODE_LOCATION,
    INPUT_HASH_METADATA_KEY,
    LAYOUT_ASSET,
    LAYOUT_JOB,
    LAYOUT_METADATA_KEY,
    MAX_SUBMISSION_BYTES,
    REPOSITORY,
    SUBMISSION_ASSET,
    building_partition_key,
)
from ceilgrid_assets.core.engine.errors import InputError

LAYOUT_EVENTS = """
query LayoutEvents($assetKey: AssetKeyInput!, $partition: String!, $limit: Int!) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      assetEventHistory(partitions: [$partition], limit: $limit,
                        eventTypeSelectors: [MATERIALIZATION, FAILED_TO_MATERIALIZE]) {
        results {
          __typename
          ... on MaterializationEvent {
            runId timestamp
            metadataEntries { label ... on TextMetadataEntry { text } }
          }
          ... on FailedToMaterializeEvent { runId timestamp }
        }
      }
    }
    ... on AssetNotFoundError { message }
  }
}
"""

RUN_FAILURE = """
query RunFailure($runId: ID!) {
  logsForRun(runId: $runId, limit: 1000) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on ExecutionStepFailureEvent { stepKey error { message } }
        ... on RunFailureEvent { message }
      }
    }
    ... on PythonError { message }
  }
}
"""


class ServerError(RuntimeError):
    """The webserver or the run failed; ``str`` is one line."""


#: Credentials for an authenticating proxy (the Docker deployment's nginx), when
#: the URL carries none: ``https://user:password@host`` wins over these.
USER_ENV, PASSWORD_ENV = "CEILGRID_USER", "CEILGRID_PASSWORD"


@dataclass(frozen=True)
class Server:
    """A webserver address without credentials (safe to print) and the credentials apart."""

    url: str
    auth: tuple[str, str] | None = None

    @classmethod
    def parse(cls, url: str) -> Server:
        """Split ``user:password@`` off ``url``; else take the credentials from the environment."""
        address = urlsplit(url)
        if address.username is not None:
            host = address.hostname or ""
            netloc = f"[{host}]" if ":" in host else host
            netloc += f":{address.port}" if address.port else ""
            plain = urlunsplit(address._replace(netloc=netloc))
            auth = (unquote(address.username), unquote(address.password or ""))
            return cls(plain.rstrip("/"), auth)
        user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
        return cls(url.rstrip("/"), (user, password or "") if user else None)


def _json_error(response: requests.Response) -> str | None:
    """The ``error`` a Dagster webserver's REST endpoint explains a refusal with, if any."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


def post_json(
    endpoint: str,
    payload: dict[str, Any],
    timeout_s: float,
    auth: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """POST JSON, return the JSON object answered; any failure is one ServerError."""
    import requests  # here, so that the other commands start without it

    try:
        response = requests.post(endpoint, json=payload, timeout=timeout_s, auth=auth)
    except requests.RequestException as exc:
        raise ServerError(f"{endpoint}: {exc}") from None
    if response.status_code == 401 and not _json_error(response):
        # The proxy's answer is an HTML page; a read-only webserver explains in JSON.
        raise ServerError(
            f"{endpoint}: HTTP 401: credentials {'refused' if auth else 'needed'}; give them "
            f"in the URL (https://user:password@host) or as {USER_ENV} and {PASSWORD_ENV}"
        )
    try:
        body = response.json()
    except ValueError:
        raise ServerError(
            f"{endpoint}: HTTP {response.status_code}, not JSON: {response.text[:200]}"
        ) from None
    if not isinstance(body, dict):
        raise ServerError(f"{endpoint}: HTTP {response.status_code}, not a JSON object")
    if not response.ok:  # the webserver's REST endpoints explain in "error"
        raise ServerError(
            f"{endpoint}: HTTP {response.status_code}: {body.get('error') or response.text[:200]}"
        )
    return body


class GraphQL:
    """A minimal GraphQL caller (requests only: the client needs no Dagster install)."""

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        server = Server.parse(url)
        self.endpoint = server.url + "/graphql"
        self.auth = server.auth
        self.timeout_s = timeout_s

    def __call__(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = post_json(
            self.endpoint, {"query": query, "variables": variables}, self.timeout_s, self.auth
        )
        if body.get("errors"):
            raise ServerError(f"{self.endpoint}: {body['errors'][0].get('message')}")
        if not isinstance(body.get("data"), dict):
            raise ServerError(f"{self.endpoint}: no data in the answer")
        return body["data"]


REPORT_SUBMISSION = """
mutation Submit($params: ReportRunlessAssetEventsParams!) {
  reportRunlessAssetEvents(eventParams: $params) {
    __typename
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}"""


def submit(url: str, document_text: str, key: str, timeout_s: float = 60.0) -> None:
    """Record the building as a ``building_submission`` event through GraphQL; no run starts.

    ``reportRunlessAssetEvents`` takes no metadata, so the document travels as the
    event's description; the inbox sensor stages it and lays it out in a batch.
    """
    answer = GraphQL(url, timeout_s)(
        REPORT_SUBMISSION,
        {
            "params": {
                "eventType": "ASSET_MATERIALIZATION",
                "assetKey": {"path": [SUBMISSION_ASSET]},
                "partitionKeys": [key],
                "description": document_text,
            }
        },
    )["reportRunlessAssetEvents"]
    if answer["__typename"] != "ReportRunlessAssetEventsSuccess":
        raise ServerError(
            f"reportRunlessAssetEvents: {answer.get('message', answer['__typename'])}"
        )


ADD_PARTITION = """
mutation AddBuilding($repo: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: $name, partitionKey: $key) {
    __typename
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}"""


def launch_run(url: str, document_text: str, key: str, timeout_s: float = 60.0) -> str:
    """The one-building path, all through GraphQL: add the partition, launch the layout job.

    Each such run pays Dagster's run start-up (seconds), so bulk clients should
    use :func:`submit`, which the inbox sensor batches. Returns the run id.
    """
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
    from requests.auth import HTTPBasicAuth

    repo = {"repositoryLocationName": CODE_LOCATION, "repositoryName": REPOSITORY}
    added = GraphQL(url, timeout_s)(ADD_PARTITION, {"repo": repo, "name": BUILDINGS, "key": key})
    outcome = added["addDynamicPartition"]
    if outcome["__typename"] not in (
        "AddDynamicPartitionSuccess",
        "DuplicateDynamicPartitionError",
    ):
        raise ServerError(f"addDynamicPartition: {outcome.get('message', outcome['__typename'])}")
    server = Server.parse(url)
    address = urlsplit(server.url)
    client = DagsterGraphQLClient(
        address.hostname or "127.0.0.1",
        port_number=address.port,
        use_https=address.scheme == "https",
        timeout=int(timeout_s),
        auth=HTTPBasicAuth(*server.auth) if server.auth else None,
        path_prefix=address.path.rstrip("/"),
    )
    try:
        return client.submit_job_execution(
            LAYOUT_JOB,
            repository_location_name=CODE_LOCATION,
            repository_name=REPOSITORY,
            run_config={"ops": {"submitted_building": {"config": {"document": document_text}}}},
            tags={"dagster/partition": key, "ceilgrid/source": "graphql"},
        )
    except DagsterGraphQLClientError as error:
        raise ServerError(f"launchRun: {error}") from None


def layout_events(graphql: GraphQL, key: str, limit: int = 5) -> list[dict[str, Any]]:
    """The newest materialization and failure events of ``completed_layout`` for ``key``."""
    asset = (
        graphql(
            LAYOUT_EVENTS, {"assetKey": {"path": [LAYOUT_ASSET]}, "partition": key, "limit": limit}
        ).get("assetOrError")
        or {}
    )
    if asset.get("__typename") != "Asset":
        raise ServerError(
            f"{LAYOUT_ASSET}: {asset.get('message') or asset.get('__typename', 'no asset')}"
        )
    return asset["assetEventHistory"]["results"]


def latest_timestamp(events: list[dict[str, Any]]) -> int:
    return max((int(event["timestamp"]) for event in events), default=0)


def wait_for_layout(
    url: str, key: str, digest: str, since: int, timeout_s: float, poll_s: float = 2.0
) -> bytes:
    """Poll ``key``'s layout events until one made from input ``digest``; its bytes.

    A failure event newer than ``since`` (ms) ends the wait when a step failed
    (bad input or a code error, not retried); a crashed worker's run is retried
    by the daemon, so the wait goes on.
    """
    graphql = GraphQL(url)
    deadline = time.monotonic() + timeout_s
    while True:
        events = layout_events(graphql, key)
        layout = layout_from(events, key, digest)
        if layout is not None:
            return layout
        for event in events:
            if (
                event["__typename"] == "FailedToMaterializeEvent"
                and int(event["timestamp"]) > since
            ):
                failure = step_failure(graphql, event["runId"])
                if failure:
                    raise ServerError(f"run {event['runId']} failed: {failure}")
        if time.monotonic() > deadline:
            raise ServerError(f"building {key} not laid out after {timeout_s:.0f} s")
        time.sleep(poll_s)


def layout_from(events: list[dict[str, Any]], key: str, digest: str) -> bytes | None:
    """The layout of the newest of ``events`` made from the document ``digest``, if any."""
    for event in events:
        entries = {entry["label"]: entry.get("text") for entry in event.get("metadataEntries", [])}
        if (
            event["__typename"] == "MaterializationEvent"
            and entries.get(INPUT_HASH_METADATA_KEY) == digest
        ):
            if entries.get(LAYOUT_METADATA_KEY) is None:
                raise ServerError(
                    f"building {key} laid out but its layout is too large for "
                    f"metadata: fetch it from the server's storage root"
                )
            return entries[LAYOUT_METADATA_KEY].encode()
    return None


def step_failure(graphql: GraphQL, run_id: str) -> str | None:
    """The first step failure of a run in one line, or None (the run crashed: retried)."""
    logs = graphql(RUN_FAILURE, {"runId": run_id})["logsForRun"]
    if logs["__typename"] != "EventConnection":
        raise ServerError(f"run {run_id}: {logs.get('message', logs['__typename'])}")
    messages = [
        event["error"]["message"]
        for event in logs["events"]
        if event["__typename"] == "ExecutionStepFailureEvent" and event.get("error")
    ]
    return " ".join(messages[0].split())[:500] if messages else None


def _rooms(document: dict[str, Any]) -> list[dict[str, Any]]:
    return document["rooms"] if "rooms" in document else [document]


def submit_command(args: argparse.Namespace) -> int:
    # numpy (through the parser) is imported when a submission runs, not for `--help`
    from ceilgrid_assets.core.engine.io import (
        content_hash,
        parse_document,
        read_limited,
        write_atomic,
    )

    data = read_limited(args.input)
    if len(data) > MAX_SUBMISSION_BYTES:
        raise InputError(
            f"file is {len(data)} bytes, more than the {MAX_SUBMISSION_BYTES} byte "
            f"limit for API submissions (drop it into the inbox)",
            source=str(args.input),
        )
    parsed = parse_document(data, source=str(args.input))
    report_errors(parsed.errors, prefix="warning")
    if not parsed.rooms:
        print(f"error: {args.input}: no valid room to lay out", file=sys.stderr)
        return EXIT_BAD_INPUT
    key = building_partition_key(parsed.building_id, str(args.input))
    text = data.decode("utf-8-sig")
    digest = content_hash(text.encode())
    try:
        events = layout_events(GraphQL(args.url), key) if args.wait else []
        since = latest_timestamp(events)
        existing = layout_from(events, key, digest) if args.wait and not args.run else None
        if existing is not None:
            print(f"building {key} was laid out from this document before", file=sys.stderr)
        elif args.run or (args.wait and not args.batch):
            run_id = launch_run(args.url, text, key)
            print(f"launched run {run_id} for building {key}", file=sys.stderr)
        else:
            submit(args.url, text, key)
            print(f"submitted building {key}", file=sys.stderr)
        if not args.wait:
            print(key)
            return EXIT_OK
        layout = existing or wait_for_layout(args.url, key, digest, since, args.timeout)
    except ServerError as error:  # server text may span lines: report it on one
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_SERVER
    rooms = _rooms(json.loads(layout))
    compliant = sum(bool(room.get("compliance", {}).get("compliant")) for room in rooms)
    if args.output is not None:
        write_atomic(args.output, layout)
    else:
        sys.stdout.buffer.write(layout)
    print(f"{key}: {compliant}/{len(rooms)} rooms compliant", file=sys.stderr)
    return EXIT_OK if compliant == len(rooms) else EXIT_NOT_COMPLIANT


def add_submit_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "submit", help="lay out a building on a Dagster webserver (GraphQL, no shared disk)"
    )
    parser.add_argument("input", type=Path, help="room or building JSON")
    parser.add_argument(
        "--url",
        required=True,
        help="webserver, e.g. http://127.0.0.1:3000; behind the deployment's proxy "
        "https://user:password@host, or give the credentials as $CEILGRID_USER and "
        "$CEILGRID_PASSWORD",
    )
    path = parser.add_mutually_exclusive_group()
    path.add_argument(
        "--run",
        action="store_true",
        help="lay the building out in a run of its own, launched through "
        "GraphQL, instead of joining the sensor's next batch (the default with --wait)",
    )
    path.add_argument(
        "--batch",
        action="store_true",
        help="with --wait: join the inbox sensor's next batch (the default without "
        "--wait) instead of a run of its own; for many buildings at once",
    )
    parser.add_argument(
        "--wait", action="store_true", help="wait for the building's layout and fetch it"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="with --wait: write the completed layout here (default stdout)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="with --wait: seconds to wait for the layout (default 600)",
    )
    parser.set_defaults(handler=submit_command)
    return parser
