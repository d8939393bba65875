"""Names the platform and its clients share: asset keys, job, partitions, metadata keys.

Dagster-free, so that ``ceilgrid submit`` (a GraphQL client) and the Dagster
definitions read the same names without the client importing Dagster.
"""

from ceilgrid_assets.core.engine.io import safe_file_stem

#: The code location (``pyproject.toml`` ``[tool.dagster]``) and its repository.
CODE_LOCATION = "ceilgrid"
REPOSITORY = "__repository__"

#: Dynamic partitions: one per submitted building.
BUILDINGS = "buildings"
#: External asset that ``ceilgrid submit`` reports, with the building as text metadata.
SUBMISSION_ASSET = "building_submission"
SUBMISSION_DOCUMENT_KEY = "document"
#: The serving job and its layout asset.
LAYOUT_JOB = "layout_building_job"
LAYOUT_ASSET = "completed_layout"
#: Layout metadata: the layout document itself, and the content hash of its input
#: (``ceilgrid submit --wait`` matches its document against it).
LAYOUT_METADATA_KEY = "layout"
INPUT_HASH_METADATA_KEY = "input_sha256"


def building_partition_key(building_id: str) -> str:
    """The partition key (also the storage folder name) of a building id."""
    return safe_file_stem(building_id, "building")
