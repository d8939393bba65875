"""Partitions: one dynamic partition per submitted building, static shards for labelling."""

import hashlib
import re

from dagster import DynamicPartitionsDefinition, StaticPartitionsDefinition

BUILDINGS = "buildings"
building_partitions = DynamicPartitionsDefinition(name=BUILDINGS)

LABEL_SHARDS = 4
label_shard_partitions = StaticPartitionsDefinition(
    [f"shard-{index:02d}" for index in range(LABEL_SHARDS)]
)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_KEY_LENGTH = 100


def building_partition_key(building_id: str) -> str:
    """A partition key (also a file name) for a building id.

    Ids that are already safe are kept as they are; others are cleaned and get
    a short hash of the original so that distinct ids never share a partition.
    """
    cleaned = _UNSAFE.sub("-", building_id).strip(".-")[:MAX_KEY_LENGTH]
    if cleaned == building_id:
        return building_id
    digest = hashlib.sha256(building_id.encode()).hexdigest()[:8]
    return f"{cleaned or 'building'}-{digest}"


def shard_index(shard_key: str) -> int:
    return int(shard_key.rsplit("-", 1)[1])
