"""The inbox sensor: dropped files and API submissions become building partitions and runs."""

import json
import os
import shutil
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from ceilgrid_assets.contract import (
    BUILDINGS,
    LAYOUT_JOB,
    MAX_SUBMISSION_BYTES,
    SUBMISSION_ASSET,
    SUBMISSION_DOCUMENT_KEY,
    building_id_problem,
    building_partition_key,
    case_collision,
)
from ceilgrid_assets.core.engine.errors import InputError, MissingFileError
from ceilgrid_assets.core.engine.io import (
    ParsedDocument,
    content_hash,
    parse_document,
    read_limited,
    write_atomic,
)
from ceilgrid_assets.defs.resources import InboxFolders, LayoutStorage, env_int

#: Files modified more recently than this may still be being written: next tick.
SETTLE_S = 1.0
#: The cursor remembers this many submitted files (by content hash).
CURSOR_MEMORY = 20_000
#: Buildings per layout run: each run pays several CPU-seconds starting a worker
#: process, a building of a few rooms well under one.
INBOX_BATCH_SIZE = env_int("CEILGRID_INBOX_BATCH_SIZE", 25)
INBOX_MAX_FILES_PER_TICK = env_int("CEILGRID_INBOX_MAX_FILES", 200)
#: API submissions read per tick (each carries its document in memory), and the
#: bytes of documents staged per tick: whoever sends them, a burst is spread over
#: ticks instead of filling memory and disk at once. One document larger than
#: MAX_SUBMISSION_BYTES is refused with its reason (drop such a file into the inbox).
API_MAX_PER_TICK = env_int("CEILGRID_API_MAX_SUBMISSIONS", 50)
API_MAX_BYTES_PER_TICK = env_int("CEILGRID_API_MAX_BYTES_PER_TICK", 4 * MAX_SUBMISSION_BYTES)
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")
#: The tag every run this sensor requests carries (recovery looks runs up by it).
INTAKE_TAG = {"ceilgrid/source": "intake"}
#: Run tag naming the inputs a layout run lays out: the first ``INPUT_DIGEST_CHARS``
#: hex digits of each building's content hash, comma-separated.
INPUTS_TAG = "ceilgrid/inputs"
INPUT_DIGEST_CHARS = 16
#: Intake runs a recovering tick looks through for the inputs a dead tick launched:
#: more than one tick can request.
RECOVERY_RUN_LOOKBACK = 1000


@dataclass(frozen=True)
class Submission:
    """A building reported through the webserver API (a ``building_submission`` event)."""

    storage_id: int
    partition_key: str | None
    document: str | None  # None when the event carries no text document


@dataclass
class InboxTick:
    """What one look at the inbox decided; :func:`scan_inbox` does the file moves."""

    cursor: dict[str, str]
    #: Storage id of the last API submission handled (staged, duplicate or rejected).
    api_after: int = 0
    accepted: dict[str, str] = field(default_factory=dict)  # partition key -> content hash
    quarantined: dict[str, str] = field(default_factory=dict)  # file name -> reason
    #: Storage id of each refused API submission -> its reason (one line).
    rejected_submissions: dict[int, str] = field(default_factory=dict)
    #: Keys in ``accepted`` staged by an earlier tick that died before committing.
    recovered: set[str] = field(default_factory=set)


def load_cursor(raw: str | None) -> dict[str, str]:
    """Content hash -> partition key of every file submitted so far (most recent last)."""
    return json.loads(raw)["submitted"] if raw else {}


def load_api_after(raw: str | None) -> int:
    """Storage id of the last API submission the sensor has handled (0: none yet)."""
    return json.loads(raw).get("api_after", 0) if raw else 0


def dump_cursor(cursor: dict[str, str], api_after: int = 0) -> str:
    recent = dict(list(cursor.items())[-CURSOR_MEMORY:])
    return json.dumps(
        {"version": 1, "submitted": recent, "api_after": api_after}, separators=(",", ":")
    )


def fetch_submissions(
    instance: dg.DagsterInstance, after: int, limit: int = API_MAX_PER_TICK
) -> list[Submission]:
    """API submissions recorded after storage id ``after``, oldest first."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(SUBMISSION_ASSET), after_storage_id=after or None
        ),
        limit=limit,
        ascending=True,
    ).records
    submissions = []
    for record in records:
        # Text metadata (the HTTP endpoint) or the description (GraphQL's
        # reportRunlessAssetEvents, which takes no metadata).
        event = record.asset_materialization
        entry = event.metadata.get(SUBMISSION_DOCUMENT_KEY)
        text = entry.value if isinstance(entry, dg.TextMetadataValue) else event.description
        submissions.append(Submission(record.storage_id, record.partition_key, text))
    return submissions


def quarantine(path: Path, folder: Path, reason: str) -> Path:
    """Move a rejected file aside with a one-line ``.error.txt``; the reason is written first."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}{path.suffix}"
    write_atomic(
        target.with_name(target.name + ".error.txt"), (" ".join(reason.split()) + "\n").encode()
    )
    try:
        shutil.move(path, target)
    except FileNotFoundError:  # removed by its owner meanwhile: leave no orphan reason
        target.with_name(target.name + ".error.txt").unlink(missing_ok=True)
    return target


def _pending_files(inbox: Path, now: float) -> list[Path]:
    entries = []
    for entry in os.scandir(inbox):
        if entry.name.startswith(".") or entry.name.endswith(IGNORED_SUFFIXES):
            continue
        try:
            if not entry.is_file() or now - entry.stat().st_mtime < SETTLE_S:
                continue
            entries.append((entry.stat().st_mtime, entry.name))
        except FileNotFoundError:
            continue  # removed by its owner meanwhile
        except OSError:  # e.g. a symlink loop: _read turns it into a quarantine reason
            entries.append((0.0, entry.name))
    return [inbox / name for _, name in sorted(entries)]


def parse_layable(data: bytes, source: str) -> ParsedDocument:
    """Parse a building that has at least one good room, else raise its first reason."""
    parsed = parse_document(data, source=source)
    if not parsed.rooms:
        first = parsed.errors[0] if parsed.errors else InputError("no rooms", source=source)
        extra = len(parsed.errors) - 1
        more = f" (and {extra} more bad rooms)" if extra > 0 else ""
        raise InputError(
            first.reason + more,
            source=first.source,
            room=first.room,
            field_name=first.field_name,
            cell=first.cell,
        )
    return parsed


def _refuse_submission(tick: InboxTick, submission: Submission, reason: str) -> None:
    tick.rejected_submissions[submission.storage_id] = reason
    tick.api_after = submission.storage_id


def _stage_submissions(
    tick: InboxTick,
    storage: LayoutStorage,
    submissions: list[Submission],
    recovered: set[str],
    known_keys: set[str],
    max_bytes: int = API_MAX_BYTES_PER_TICK,
) -> None:
    """Stage API submissions like inbox files; the cursor advances past each one handled.

    A submission for a building already accepted in this tick, or one past this
    tick's byte budget, stops the scan (it and the rest wait a tick), so one
    tick never stages a key twice nor more than ``max_bytes``. The partition key
    the client reported is checked before anything else: it is never used for
    a path, the building id in the document is, and the two must agree.
    """
    staged_bytes = 0
    for submission in submissions:
        label = f"API submission {submission.storage_id}"
        reported = submission.partition_key
        if reported is not None:
            label += f" ({ascii(reported[:60])})"
        if submission.document is None:
            _refuse_submission(
                tick,
                submission,
                f"{label}: no document (text metadata '{SUBMISSION_DOCUMENT_KEY}' or description)",
            )
            continue
        data = submission.document.encode()
        if len(data) > MAX_SUBMISSION_BYTES:
            _refuse_submission(
                tick,
                submission,
                f"{label}: document is {len(data)} bytes, more than the "
                f"{MAX_SUBMISSION_BYTES} byte limit for API submissions",
            )
            continue
        if staged_bytes and staged_bytes + len(data) > max_bytes:
            break
        digest = content_hash(data)
        if digest in recovered:  # staged by a tick that died before committing
            tick.api_after = submission.storage_id
            continue
        known = tick.cursor.get(digest) or next(
            (key for key, value in tick.accepted.items() if value == digest), None
        )
        if known is not None:  # already laid out (or about to be): submit --wait finds it
            _refuse_submission(tick, submission, f"{label}: same document as building {known}")
            continue
        try:
            parsed = parse_layable(data, f"{label}.json")
            key = building_partition_key(parsed.building_id, f"{label}.json")
        except InputError as error:
            _refuse_submission(tick, submission, str(error))
            continue
        if key != reported:
            _refuse_submission(
                tick, submission, f"{label}: building {key} reported under another partition key"
            )
            continue
        other = case_collision(key, [*known_keys, *tick.accepted])
        if other is not None:
            _refuse_submission(tick, submission, f"{label}: {collision_reason(key, other)}")
            continue
        if key in tick.accepted:
            break
        storage.blobs().put_bytes(storage.incoming_key(key), data)
        staged_bytes += len(data)
        tick.accepted[key] = digest
        tick.api_after = submission.storage_id


def collision_reason(key: str, other: str) -> str:
    return (
        f"building id {key} differs from building {other} only in letter case "
        "(they would share one folder on a case-insensitive disk)"
    )


def scan_inbox(
    folders: InboxFolders,
    storage: LayoutStorage,
    cursor: dict[str, str],
    max_files: int = INBOX_MAX_FILES_PER_TICK,
    now: float | None = None,
    submissions: list[Submission] = (),
    api_after: int = 0,
    known_keys: Collection[str] = (),
) -> InboxTick:
    """Stage API submissions and good inbox files in storage; quarantine bad files.

    A good file is stored whole as ``incoming/<key>.json`` before it leaves
    the inbox, and a staged file the cursor does not know (a tick that died
    before committing) is picked up again, so no file is lost or laid out twice.
    API submissions (read from the event log after ``api_after``) are staged the
    same way, so both share the batched layout runs. A building id that is not
    a valid partition key, or differs from one of ``known_keys`` (or another
    building of this tick) only in letter case, is refused with its reason.
    Every refused API submission leaves ``api-submission-<id>.error.txt`` in
    the quarantine folder (the document stays in the event log).
    """
    inbox, quarantine_dir = Path(folders.inbox), Path(folders.quarantine)
    inbox.mkdir(parents=True, exist_ok=True)
    tick = InboxTick(cursor=dict(cursor), api_after=api_after)
    blobs = storage.blobs()
    for staged in blobs.list("incoming"):
        key = staged.removeprefix("incoming/").removesuffix(".json")
        data = blobs.get_bytes(staged)
        if building_id_problem(key) or staged != storage.incoming_key(key) or data is None:
            continue  # not one of ours, or consumed by a run meanwhile
        digest = content_hash(data)
        if digest not in tick.cursor:
            tick.accepted[key] = digest
            tick.recovered.add(key)
    recovered = {tick.accepted[key] for key in tick.recovered}
    _stage_submissions(tick, storage, list(submissions), recovered, set(known_keys))
    for storage_id, reason in tick.rejected_submissions.items():
        write_atomic(
            quarantine_dir / f"api-submission-{storage_id}.error.txt",
            (" ".join(reason.split()) + "\n").encode(),
        )
    for path in _pending_files(inbox, time.time() if now is None else now)[:max_files]:
        try:
            data = read_limited(path, source=path.name)
        except MissingFileError:
            # Removed by its owner meanwhile, or a link left dangling: nothing to keep.
            continue
        except InputError as error:
            tick.quarantined[path.name] = str(error)
            quarantine(path, quarantine_dir, str(error))
            continue
        digest = content_hash(data)
        if digest in recovered:  # staged by a tick that died before removing it
            path.unlink(missing_ok=True)
            continue
        if digest in tick.cursor or digest in tick.accepted.values():
            known = tick.cursor.get(digest) or next(
                key for key, value in tick.accepted.items() if value == digest
            )
            reason = f"{path.name}: duplicate of a file already submitted as building {known}"
            tick.quarantined[path.name] = reason
            quarantine(path, quarantine_dir, reason)
            continue
        try:
            parsed = parse_layable(data, source=path.name)
            key = building_partition_key(parsed.building_id, path.name)
        except InputError as error:
            tick.quarantined[path.name] = str(error)
            quarantine(path, quarantine_dir, str(error))
            continue
        other = case_collision(key, [*known_keys, *tick.accepted])
        if other is not None:
            reason = f"{path.name}: {collision_reason(key, other)}"
            tick.quarantined[path.name] = reason
            quarantine(path, quarantine_dir, reason)
            continue
        if key in tick.accepted:
            continue  # same building twice in one tick: the later file waits a tick
        if parsed.errors:  # good rooms go on; the bad ones are reported beside the quarantine
            quarantine_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(
                quarantine_dir / f"{path.name}.rejected-rooms.error.txt",
                "".join(f"{error}\n" for error in parsed.errors).encode(),
            )
        blobs.put_bytes(storage.incoming_key(key), data)
        path.unlink(missing_ok=True)  # its owner may have removed it after we read it
        tick.accepted[key] = digest
    return tick


def input_digest(digest: str) -> str:
    """The short form of a content hash that :data:`INPUTS_TAG` lists."""
    return digest[:INPUT_DIGEST_CHARS]


def launched_inputs(instance: dg.DagsterInstance) -> set[str]:
    """Short digests of the inputs of recent intake runs (:data:`INPUTS_TAG`).

    The daemon stores a sensor's cursor only after submitting all of the tick's
    runs; a daemon killed in between leaves runs launched and their files staged
    but not in the cursor. The next tick must not launch them again.
    """
    runs = instance.get_runs(filters=dg.RunsFilter(tags=INTAKE_TAG), limit=RECOVERY_RUN_LOOKBACK)
    return {digest for run in runs for digest in run.tags.get(INPUTS_TAG, "").split(",") if digest}


def run_requests(
    new_keys: list[str],
    existing_keys: list[str],
    digests: dict[str, str],
    batch_size: int = INBOX_BATCH_SIZE,
) -> list[dg.RunRequest]:
    """Batch new buildings into partition-range runs; re-submissions run one by one.

    New partitions are added in one request, in this order, so each batch is a
    contiguous range of the ``buildings`` partitions. The run key is derived from
    the contents, so a tick that is re-evaluated never launches a run twice.
    """
    requests = []
    for start in range(0, len(new_keys), max(1, batch_size)):
        batch = new_keys[start : start + batch_size]
        run_key = "inbox-" + (
            digests[batch[0]]
            if len(batch) == 1
            else content_hash("".join(digests[key] for key in batch).encode())
        )
        tags = {
            **INTAKE_TAG,
            "ceilgrid/buildings": str(len(batch)),
            INPUTS_TAG: ",".join(input_digest(digests[key]) for key in batch),
        }
        if len(batch) == 1:
            requests.append(dg.RunRequest(run_key=run_key, partition_key=batch[0], tags=tags))
        else:
            requests.append(
                dg.RunRequest(
                    run_key=run_key,
                    tags={
                        **tags,
                        "dagster/asset_partition_range_start": batch[0],
                        "dagster/asset_partition_range_end": batch[-1],
                    },
                )
            )
    for key in existing_keys:
        requests.append(
            dg.RunRequest(
                run_key=f"inbox-{digests[key]}",
                partition_key=key,
                tags={**INTAKE_TAG, INPUTS_TAG: input_digest(digests[key])},
            )
        )
    return requests


@dg.sensor(
    job_name=LAYOUT_JOB,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Buildings dropped into the inbox folder or submitted through the API "
    "(ceilgrid submit) are validated and laid out, several per run; bad files go "
    "to quarantine with a one-line .error.txt.",
)
def inbox_sensor(
    context: dg.SensorEvaluationContext, inbox_folders: InboxFolders, layout_storage: LayoutStorage
) -> dg.SensorResult | dg.SkipReason:
    # One sensor for both sources: its partitions are added in one request per tick,
    # so every batch is a contiguous range of the buildings partitions.
    after = load_api_after(context.cursor)
    known = set(context.instance.get_dynamic_partitions(BUILDINGS))
    tick = scan_inbox(
        inbox_folders,
        layout_storage,
        load_cursor(context.cursor),
        submissions=fetch_submissions(context.instance, after),
        api_after=after,
        known_keys=known,
    )
    for name, reason in tick.quarantined.items():
        context.log.warning(f"quarantined {name}: {reason}")
    for reason in tick.rejected_submissions.values():
        context.log.warning(f"not laid out: {reason}")
    if not tick.accepted:
        if tick.quarantined or tick.api_after != after:
            handled = len(tick.quarantined) + len(tick.rejected_submissions)
            return dg.SensorResult(
                skip_reason=f"{handled} submission(s) not laid out",
                cursor=dump_cursor(tick.cursor, tick.api_after),
            )
        return dg.SkipReason(f"no new files in {inbox_folders.inbox} and no API submissions")
    launched = launched_inputs(context.instance) if tick.recovered else set()
    to_run = [
        key
        for key in tick.accepted
        if key not in tick.recovered or input_digest(tick.accepted[key]) not in launched
    ]
    if len(to_run) < len(tick.accepted):
        context.log.info(
            f"{len(tick.accepted) - len(to_run)} staged building(s) already have a run "
            "(launched by a tick that stopped before storing its cursor)"
        )
    new_keys = [key for key in to_run if key not in known]
    existing = [key for key in to_run if key in known]
    cursor = dict(tick.cursor)
    cursor.update({digest: key for key, digest in tick.accepted.items()})
    return dg.SensorResult(
        run_requests=run_requests(new_keys, existing, tick.accepted),
        dynamic_partitions_requests=[
            dg.AddDynamicPartitionsRequest(partitions_def_name=BUILDINGS, partition_keys=new_keys)
        ]
        if new_keys
        else [],
        cursor=dump_cursor(cursor, tick.api_after),
    )
