"""Layouts, reports, model versions and compute logs in S3-compatible object storage.

Everything runs against moto's S3 server started on 127.0.0.1 (a real HTTP
server speaking the S3 protocol, driven by the same boto3 calls as a cloud
bucket); the keys below are throwaway values that server accepts.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pytest
import yaml
from helpers import EXAMPLES_DIR, PROJECT_ROOT, load_module, plain_model
from moto.server import ThreadedMotoServer

from ceilgrid_assets.cli import main
from ceilgrid_assets.contract import BUILDINGS
from ceilgrid_assets.core.engine.io import content_hash
from ceilgrid_assets.core.learning import registry
from ceilgrid_assets.core.learning.learned import save_model
from ceilgrid_assets.core.learning.registry import REMOTE_MODELS
from ceilgrid_assets.core.outputs.export import bill_of_quantities, boq_csv, layout_from_document
from ceilgrid_assets.core.storage import LocalBlobs, S3Blobs, open_blobs
from ceilgrid_assets.definitions import defs
from ceilgrid_assets.defs.resources import LayoutStorage, ModelStore, build_resources
from ceilgrid_assets.defs.serving.sensors import scan_inbox

SERVING = ["submitted_building", "completed_layout", "building_report"]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A fresh bucket; boto3 finds the server and the throwaway keys in the environment."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-only-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-only-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    open_blobs.cache_clear()  # clients made under another test's environment
    name = f"ceilgrid-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    yield name
    open_blobs.cache_clear()


def objects(bucket: str, prefix: str = "") -> dict[str, bytes]:
    client = boto3.client("s3")
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {
        item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        for item in listed
    }


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_both_backends_keep_the_same_contract(backend: str, request, tmp_path) -> None:
    if backend == "s3":
        blobs = open_blobs(f"s3://{request.getfixturevalue('bucket')}/some/prefix", "")
        assert isinstance(blobs, S3Blobs)
    else:
        blobs = open_blobs("", str(tmp_path / "root"))
        assert isinstance(blobs, LocalBlobs)
    assert blobs.get_bytes("buildings/a/layout.json") is None
    assert not blobs.exists("buildings/a/layout.json")
    assert blobs.list("buildings") == []
    blobs.put_bytes("buildings/a/layout.json", b"one")
    blobs.put_bytes("buildings/a/layout.json", b"two")  # replaced whole
    blobs.put_bytes("buildings/b/input.json", b"three")
    blobs.put_bytes("incoming/c.json", b"four")
    assert blobs.get_bytes("buildings/a/layout.json") == b"two"
    assert blobs.exists("buildings/b/input.json")
    assert blobs.list("buildings") == ["buildings/a/layout.json", "buildings/b/input.json"]
    assert blobs.list("buildings/a") == ["buildings/a/layout.json"]
    blobs.delete("incoming/c.json")
    blobs.delete("incoming/c.json")  # a missing key is no error
    assert blobs.list("incoming") == []
    for bad in ("../escape", "/etc/passwd", "a//b", "a/./b", ".hidden", "a\\b", "", "a/"):
        with pytest.raises(ValueError, match="not a plain relative name"):
            blobs.put_bytes(bad, b"x")
        with pytest.raises(ValueError):
            blobs.get_bytes(bad)
    if backend == "s3":
        assert blobs.describe("incoming/c.json").endswith("/some/prefix/incoming/c.json")
        names = objects(request.getfixturevalue("bucket"))
        assert set(names) == {
            "some/prefix/buildings/a/layout.json",
            "some/prefix/buildings/b/input.json",
        }
    else:  # today's folder layout, byte for byte
        assert (tmp_path / "root/buildings/a/layout.json").read_bytes() == b"two"


def test_storage_url_must_be_s3() -> None:
    for url in ("http://bucket/x", "s3://", "s3:///x", "file:///tmp/x", "s3://b/p?x=1"):
        with pytest.raises(ValueError, match="expected s3://BUCKET"):
            open_blobs(url, "")


def one_room_building(building_id: str) -> str:
    document = json.loads((EXAMPLES_DIR / "office-floor.json").read_bytes())
    document["building_id"] = building_id
    document["rooms"] = document["rooms"][:2]
    return json.dumps(document)


def test_serving_run_writes_and_reads_only_objects(
    bucket, ceilgrid_home, postgres_instance, monkeypatch
) -> None:
    monkeypatch.setenv("CEILGRID_STORAGE_URL", f"s3://{bucket}/ceilgrid")
    key = "s3-tower"
    postgres_instance.add_dynamic_partitions(BUILDINGS, [key])
    document = one_room_building(key)
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=SERVING,
        partition_key=key,
        instance=postgres_instance,
        resources=build_resources(),
        run_config={"ops": {"submitted_building": {"config": {"document": document}}}},
    )
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"layout_claims_hold": True, "layout_rooms_compliant": True}

    stored = objects(bucket, "ceilgrid/")
    folder = f"ceilgrid/buildings/{key}/"
    assert set(stored) == {
        folder + name
        for name in ("input.json", "layout.json", "report.csv", "report.html", "layout.ifc")
    }
    assert stored[folder + "input.json"] == document.encode()
    layout = layout_from_document(json.loads(stored[folder + "layout.json"]))
    assert len(layout.rooms) == 2
    assert all(layout.compliance(index)["compliant"] for index in range(2))
    assert stored[folder + "report.csv"] == boq_csv(bill_of_quantities(layout))
    assert b"<html" in stored[folder + "report.html"]
    assert stored[folder + "layout.ifc"].startswith(b"ISO-10303-21;")
    # The layout API clients read from metadata is the object's exact bytes.
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("completed_layout")
    ]
    metadata = event.materialization.metadata
    assert metadata["layout"].value == stored[folder + "layout.json"].decode()
    assert metadata["path"].value == f"s3://{bucket}/{folder}layout.json"
    # Nothing went to the local storage root.
    assert files_under(ceilgrid_home / "storage") == []

    # Re-materialized without a document, the layout is made again from the stored input.
    again = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=["submitted_building", "completed_layout"],
        partition_key=key,
        instance=postgres_instance,
        resources=build_resources(),
    )
    assert again.success
    assert objects(bucket, folder + "layout.json") == {
        folder + "layout.json": stored[folder + "layout.json"]
    }


def test_a_bad_partition_key_reaches_no_object(
    bucket, ceilgrid_home, postgres_instance, monkeypatch
):
    monkeypatch.setenv("CEILGRID_STORAGE_URL", f"s3://{bucket}/ceilgrid")
    bad = "../../escape"
    document = one_room_building("x")
    postgres_instance.add_dynamic_partitions(BUILDINGS, [bad])
    result = dg.materialize(
        [*defs.assets],
        selection=["submitted_building"],
        partition_key=bad,
        instance=postgres_instance,
        resources=build_resources(),
        run_config={"ops": {"submitted_building": {"config": {"document": document}}}},
        raise_on_error=False,
    )
    assert not result.success
    storage = build_resources()["layout_storage"]
    with pytest.raises(ValueError):
        storage.input_key(bad)
    assert objects(bucket) == {}


def test_inbox_staging_and_recovery_through_the_bucket(bucket, tmp_path) -> None:
    storage = LayoutStorage(root=str(tmp_path / "storage"), url=f"s3://{bucket}/ceilgrid")
    folders = build_resources()["inbox_folders"].model_copy(
        update={"inbox": str(tmp_path / "inbox"), "quarantine": str(tmp_path / "quarantine")}
    )
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    data = one_room_building("dropped").encode()
    (inbox / "dropped.json").write_bytes(data)
    os.utime(inbox / "dropped.json", (0, 0))  # settled long ago
    tick = scan_inbox(folders, storage, cursor={})
    assert tick.accepted == {"dropped": content_hash(data)}
    assert objects(bucket) == {"ceilgrid/incoming/dropped.json": data}
    assert not (inbox / "dropped.json").exists()
    # A tick that died before committing its cursor: the staged object is submitted again.
    assert scan_inbox(folders, storage, cursor={}).accepted == tick.accepted
    assert scan_inbox(folders, storage, cursor={content_hash(data): "dropped"}).accepted == {}
    # An object planted under incoming/ with a name that is no building key is ignored.
    storage.blobs().put_bytes("incoming/bad..name.json", data)
    storage.blobs().put_bytes("incoming/nested/x.json", data)
    assert scan_inbox(folders, storage, cursor={content_hash(data): "dropped"}).accepted == {}
    assert files_under(tmp_path / "storage") == []


def test_label_cache_is_shared_through_the_bucket(
    bucket, ceilgrid_home, postgres_instance, monkeypatch
) -> None:
    """A labelling run on a fresh pod replays the labels another pod solved."""
    monkeypatch.setenv("CEILGRID_STORAGE_URL", f"s3://{bucket}/ceilgrid")
    everything = [*defs.assets, *defs.asset_checks]
    corpus = dg.materialize(
        everything,
        selection=["served_rooms", "room_corpus"],
        instance=postgres_instance,
        resources=build_resources(),
        run_config={"ops": {"room_corpus": {"config": {"n_rooms": 12, "seed": 5}}}},
    )
    assert corpus.success

    def label(root: Path) -> dict[str, Any]:
        monkeypatch.setenv("CEILGRID_STORAGE_ROOT", str(root))
        result = dg.materialize(
            everything,
            selection="optimiser_labels",
            partition_key="shard-00",
            instance=postgres_instance,
            resources=build_resources(),
        )
        (event,) = result.get_asset_materialization_events()
        return {key: value.value for key, value in event.materialization.metadata.items()}

    first = label(ceilgrid_home / "pod-a")
    assert first["rooms"] > 0 and first["rooms_from_label_cache"] == 0
    stored = objects(bucket, "ceilgrid/label-cache/")
    local = {path.name: path.read_bytes() for path in files_under(ceilgrid_home / "pod-a")}
    assert stored and {name.rsplit("/", 1)[1]: data for name, data in stored.items()} == local
    second = label(ceilgrid_home / "pod-b")
    assert second["rooms_from_label_cache"] == second["rooms"] == first["rooms"]
    assert second["rooms_labelled"] == 0


def candidate(folder: Path) -> Path:
    folder.mkdir(parents=True)
    save_model(plain_model("light"), folder)
    return folder


def test_model_versions_are_shared_through_the_bucket(bucket, tmp_path) -> None:
    url = f"s3://{bucket}/ceilgrid"
    trainer = ModelStore(location=str(tmp_path / "trainer-cache"), url=url)
    server = ModelStore(location=str(tmp_path / "server-cache"), url=url)
    assert server.load_promoted() == (None, []) and server.promoted_record() is None

    first = trainer.promote(candidate(tmp_path / "c1"), {"note": "first"})
    assert first.id == "v0001"
    stored = objects(bucket, f"ceilgrid/{REMOTE_MODELS}/")
    assert json.loads(stored[f"ceilgrid/{REMOTE_MODELS}/promoted"]) == {"version": "v0001"}
    version_files = sorted(path.name for path in first.path.iterdir())
    assert version_files == ["light.json", "light.onnx", registry.RECORD]
    for name in version_files:
        key = f"ceilgrid/{REMOTE_MODELS}/versions/v0001/{name}"
        assert stored[key] == (first.path / name).read_bytes()

    # Another pod with an empty cache downloads the version and loads it (an ONNX graph).
    promoted = server.load_promoted()
    assert promoted.version == "v0001"
    assert [model.components for model in promoted.models] == [("light",)]
    assert server.promoted_record()["note"] == "first"
    assert (tmp_path / "server-cache/versions/v0001/light.onnx").is_file()

    # A promotion from a third pod continues the bucket's numbering; the others follow.
    other = ModelStore(location=str(tmp_path / "other-cache"), url=url)
    assert other.promote(candidate(tmp_path / "c2"), {"note": "second"}).id == "v0002"
    assert server.load_promoted().version == "v0002"
    assert trainer.promoted_record()["note"] == "second"


def test_a_planted_pointer_or_partial_version_is_refused(bucket, tmp_path) -> None:
    url = f"s3://{bucket}/ceilgrid"
    store = ModelStore(location=str(tmp_path / "cache"), url=url)
    blobs = open_blobs(url, "")
    blobs.put_bytes(f"{REMOTE_MODELS}/promoted", json.dumps({"version": "../../etc"}).encode())
    with pytest.raises(ValueError, match="names no version id"):
        store.load_promoted()
    blobs.put_bytes(f"{REMOTE_MODELS}/versions/v0007/light.json", b"{}")
    blobs.put_bytes(f"{REMOTE_MODELS}/promoted", json.dumps({"version": "v0007"}).encode())
    with pytest.raises(registry.RegistryError, match="partial"):
        store.load_promoted()
    assert files_under(tmp_path / "cache") == []


def test_the_command_line_lists_promotes_and_rolls_back_the_bucket_registry(
    bucket, tmp_path, capsys
) -> None:
    """``ceilgrid models --url``: the versions a pod promoted, and a rollback every pod follows."""
    url = f"s3://{bucket}/ceilgrid"
    trainer = ModelStore(location=str(tmp_path / "trainer-cache"), url=url)
    trainer.promote(candidate(tmp_path / "c1"), {"note": "first"})
    trainer.promote(candidate(tmp_path / "c2"), {"note": "second"})
    # a promotion still uploading: its files without the record, which comes last
    open_blobs(url, "").put_bytes(f"{REMOTE_MODELS}/versions/v0003/light.json", b"{}")
    cli = ["models", "--url", url, "--store", str(tmp_path / "cli-cache")]

    assert main([*cli, "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [(line[0], json.loads(line[2:])["version"]) for line in listed] == [
        (" ", "v0001"),
        ("*", "v0002"),
    ]
    assert main([*cli, "show", "v0001"]) == 0
    assert json.loads(capsys.readouterr().out)["note"] == "first"

    pointer = f"ceilgrid/{REMOTE_MODELS}/promoted"
    assert main([*cli, "rollback"]) == 0
    assert capsys.readouterr().out.strip() == "serving v0001"
    assert json.loads(objects(bucket, pointer)[pointer]) == {"version": "v0001"}
    server = ModelStore(location=str(tmp_path / "server-cache"), url=url)
    assert server.load_promoted().version == "v0001"
    assert main([*cli, "rollback"]) == 2  # nothing older
    assert "v0001 is the oldest version" in capsys.readouterr().err

    assert main([*cli, "promote", "v0002"]) == 0
    assert server.load_promoted().version == "v0002"
    assert main([*cli, "promote", "v0009"]) == 2
    error = capsys.readouterr().err.strip()
    assert "no model version v0009" in error and "\n" not in error
    assert json.loads(objects(bucket, pointer)[pointer]) == {"version": "v0002"}
    assert main(["models", "--url", "http://not-a-bucket", "list"]) == 2
    assert "expected s3://BUCKET" in capsys.readouterr().err

    # The history is the bucket's: the pod's promotions and the command line's actions,
    # read from a machine that made none of them.
    other = ["models", "--url", url, "--store", str(tmp_path / "other-cache")]
    assert main([*other, "history"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["version"], line["action"]) for line in lines] == [
        ("v0001", "promote"),
        ("v0002", "promote"),
        ("v0001", "rollback"),
        ("v0002", "promote"),
    ]
    assert all(line["at"].endswith("Z") for line in lines)


def helm_compute_logs(endpoint: str) -> dict[str, Any]:
    """The instance's ``compute_logs`` as the Helm chart renders it from values.yaml."""
    offline = load_module("ceilgrid_k8s_offline", PROJECT_ROOT / "deploy/k8s/offline.py")
    values = offline.load_values()
    values["computeLogManager"]["config"]["s3ComputeLogManager"]["endpointUrl"] = endpoint
    return offline.compute_log_manager_config(values)


def test_compute_logs_go_to_the_bucket_with_the_helm_values(
    bucket, s3_endpoint, dagster_home, monkeypatch
) -> None:
    config = helm_compute_logs(s3_endpoint)
    assert config["class"] == "S3ComputeLogManager"
    config["config"]["bucket"] = bucket  # the values name the production bucket
    instance_yaml = yaml.safe_load((dagster_home / "dagster.yaml").read_text())
    instance_yaml["compute_logs"] = config
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml))

    @dg.asset
    def noisy() -> int:
        print("stdout line from the step")
        print("stderr line from the step", file=sys.stderr)
        return 1

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.compute_log_manager).__name__ == "S3ComputeLogManager"
        result = dg.materialize([noisy], instance=instance)
        assert result.success
    stored = objects(bucket, config["config"]["prefix"] + "/")
    text = b"".join(stored.values())
    assert b"stdout line from the step" in text and b"stderr line from the step" in text
    assert any(name.endswith(".out") for name in stored)
    assert any(name.endswith(".err") for name in stored)
