"""Static shards: optimiser labelling is split so that shards run in parallel and retry alone."""

from dagster import StaticPartitionsDefinition

LABEL_SHARDS = 4
label_shard_partitions = StaticPartitionsDefinition(
    [f"shard-{index:02d}" for index in range(LABEL_SHARDS)]
)


def shard_index(shard_key: str) -> int:
    return int(shard_key.rsplit("-", 1)[1])
