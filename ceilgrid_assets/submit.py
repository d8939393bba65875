"""``ceilgrid submit``: lay out a building on a remote Dagster webserver through GraphQL.

Only network access to the webserver is needed (no shared disk): the building
JSON travels in the run config of ``layout_building_job`` and the completed
layout comes back in the ``layout`` JSON metadata of the run's
``completed_layout`` materialization (the file's exact bytes). The GraphQL calls are documented in
docs/platform.md for other clients.

Exit codes: 0 laid out and every room compliant (or submitted, without
``--wait``), 1 a room could not be made compliant, 2 bad input, 3 the server
failed (unreachable, run failed or timed out).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from .core.io import MAX_FILE_BYTES, InputError, parse_document, write_atomic

JOB = "layout_building_job"
LOCATION = "ceilgrid"
PARTITIONS = "buildings"
LAYOUT_ASSET = ["completed_layout"]
LAYOUT_METADATA_KEY = "layout"
EXIT_OK, EXIT_NOT_COMPLIANT, EXIT_BAD_INPUT, EXIT_SERVER = 0, 1, 2, 3
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

ADD_PARTITION = """
mutation AddBuilding($partitionsDefName: String!, $partitionKey: String!,
                     $repositorySelector: RepositorySelector!) {
  addDynamicPartition(partitionsDefName: $partitionsDefName, partitionKey: $partitionKey,
                      repositorySelector: $repositorySelector) {
    __typename
    ... on AddDynamicPartitionSuccess { partitionKey }
    ... on DuplicateDynamicPartitionError { partitionName }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""

RUN_RESULT = """
query RunResult($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      status
      assetMaterializations {
        assetKey { path }
        partition
        metadataEntries { label ... on TextMetadataEntry { text } }
      }
    }
    ... on PythonError { message }
  }
  logsForRun(runId: $runId, limit: 500) {
    ... on EventConnection {
      events {
        __typename
        ... on ExecutionStepFailureEvent { stepKey error { message } }
        ... on RunFailureEvent { message }
        ... on AssetCheckEvaluationEvent {
          evaluation { checkName success }
        }
      }
    }
  }
}
"""


class ServerError(RuntimeError):
    """The webserver or the run failed; ``str`` is one line."""


class GraphQL:
    """A minimal GraphQL caller for the two queries dagster-graphql's client lacks."""

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        self.endpoint = url.rstrip("/") + "/graphql"
        self.timeout_s = timeout_s

    def __call__(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            response = requests.post(self.endpoint, json={"query": query, "variables": variables},
                                     timeout=self.timeout_s)
            response.raise_for_status()
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ServerError(f"{self.endpoint}: {exc}") from None
        if body.get("errors"):
            raise ServerError(f"{self.endpoint}: {body['errors'][0].get('message')}")
        return body["data"]


def graphql_client(url: str):
    """dagster-graphql's client for the webserver at ``url`` (http[s]://host:port[/prefix])."""
    from dagster_graphql import DagsterGraphQLClient

    parts = urlsplit(url if "://" in url else f"http://{url}")
    if not parts.hostname:
        raise ServerError(f"{url}: not a webserver URL (expected http://HOST:PORT)")
    return DagsterGraphQLClient(parts.hostname, port_number=parts.port,
                                use_https=parts.scheme == "https",
                                path_prefix=parts.path.rstrip("/"))


def add_partition(graphql: GraphQL, key: str, location: str) -> None:
    data = graphql(ADD_PARTITION, {
        "partitionsDefName": PARTITIONS,
        "partitionKey": key,
        "repositorySelector": {"repositoryLocationName": location,
                               "repositoryName": "__repository__"},
    })["addDynamicPartition"]
    if data["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
        raise ServerError(f"adding partition {key}: {data.get('message', data['__typename'])}")


def submit(url: str, document_text: str, key: str, location: str = LOCATION) -> str:
    """Register the building's partition and launch the layout job; returns the run id."""
    from dagster_graphql import DagsterGraphQLClientError

    add_partition(GraphQL(url), key, location)
    try:
        return graphql_client(url).submit_job_execution(
            JOB,
            repository_location_name=location,
            run_config={"ops": {"submitted_building": {"config": {"document": document_text}}}},
            tags={"dagster/partition": key, "ceilgrid/source": "graphql"},
        )
    except DagsterGraphQLClientError as exc:
        raise ServerError(f"launching {JOB}: {' '.join(str(exc).split())[:500]}") from None


def wait_for_layout(url: str, run_id: str, timeout_s: float, poll_s: float = 0.5) -> bytes:
    """Poll the run to its end; the completed layout file's bytes, or ServerError."""
    graphql = GraphQL(url)
    deadline = time.monotonic() + timeout_s
    while True:
        data = graphql(RUN_RESULT, {"runId": run_id})
        run = data["runOrError"]
        if run["__typename"] != "Run":
            raise ServerError(f"run {run_id}: {run.get('message', run['__typename'])}")
        if run["status"] in TERMINAL:
            break
        if time.monotonic() > deadline:
            raise ServerError(f"run {run_id} still {run['status']} after {timeout_s:.0f} s")
        time.sleep(poll_s)
    if run["status"] != "SUCCESS":
        raise ServerError(f"run {run_id} {run['status'].lower()}: {_failure(data)}")
    for materialization in run["assetMaterializations"]:
        if materialization["assetKey"]["path"] != LAYOUT_ASSET:
            continue
        for entry in materialization["metadataEntries"]:
            if entry["label"] == LAYOUT_METADATA_KEY:
                return entry["text"].encode()
    raise ServerError(f"run {run_id} succeeded but returned no layout (too large for metadata? "
                      f"fetch it from the server's storage root)")


def _failure(data: dict[str, Any]) -> str:
    events = (data.get("logsForRun") or {}).get("events", [])
    messages = [event["error"]["message"] for event in events
                if event["__typename"] == "ExecutionStepFailureEvent" and event.get("error")]
    messages += [f"check {event['evaluation']['checkName']} failed" for event in events
                 if event["__typename"] == "AssetCheckEvaluationEvent"
                 and not event["evaluation"]["success"]]
    if not messages:
        messages = [event["message"] for event in events
                    if event["__typename"] == "RunFailureEvent"]
    text = messages[0] if messages else "no error recorded"
    return " ".join(text.split())[:500]


def _rooms(document: dict[str, Any]) -> list[dict[str, Any]]:
    return document["rooms"] if "rooms" in document else [document]


def submit_command(args: argparse.Namespace) -> int:
    size = Path(args.input).stat().st_size
    if size > MAX_FILE_BYTES:  # before reading: a huge file must not be loaded into memory
        raise InputError(f"file is {size} bytes, more than the {MAX_FILE_BYTES} byte limit",
                         source=str(args.input))
    data = Path(args.input).read_bytes()
    parsed = parse_document(data, source=str(args.input))
    for error in parsed.errors:
        print(f"warning: {error}", file=sys.stderr)
    if not parsed.rooms:
        print(f"error: {args.input}: no valid room to lay out", file=sys.stderr)
        return EXIT_BAD_INPUT
    from .defs.partitions import building_partition_key

    key = building_partition_key(parsed.building_id)
    try:
        run_id = submit(args.url, data.decode("utf-8-sig"), key, args.location)
        print(f"submitted building {key}: run {run_id}", file=sys.stderr)
        if not args.wait:
            print(run_id)
            return EXIT_OK
        layout = wait_for_layout(args.url, run_id, args.timeout)
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
        "submit", help="lay out a building on a Dagster webserver (GraphQL, no shared disk)")
    parser.add_argument("input", type=Path, help="room or building JSON")
    parser.add_argument("--url", required=True, help="webserver, e.g. http://127.0.0.1:3000")
    parser.add_argument("--wait", action="store_true",
                        help="wait for the run and fetch the completed layout")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="with --wait: write the completed layout here (default stdout)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="with --wait: seconds to wait for the run (default 600)")
    parser.add_argument("--location", default=LOCATION,
                        help=f"code location name (default {LOCATION})")
    parser.set_defaults(handler=submit_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m ceilgrid_assets.submit``) with the CLI's conventions."""
    parser = argparse.ArgumentParser(prog="ceilgrid")
    add_submit_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["submit", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.handler(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:
        print(f"error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
