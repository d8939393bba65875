"""Names the platform and its clients share: asset keys, job, partitions, metadata keys.

Dagster-free, so that ``ceilgrid submit`` (a GraphQL client) and the Dagster
definitions read the same names without the client importing Dagster.
"""

import re
from collections.abc import Iterable

from ceilgrid_assets.core.engine.errors import InputError

#: The code location (``pyproject.toml`` ``[tool.dagster]``) and its repository.
CODE_LOCATION = "ceilgrid"
REPOSITORY = "__repository__"

#: Dynamic partitions: one per submitted building.
BUILDINGS = "buildings"
#: External asset that ``ceilgrid submit`` reports, with the building as text metadata.
SUBMISSION_ASSET = "building_submission"
SUBMISSION_DOCUMENT_KEY = "document"
#: The largest building document accepted through the webserver API (checked by
#: ``ceilgrid submit`` before sending and again where it is
#: accepted: the inbox sensor and the run config of ``submitted_building``).
MAX_SUBMISSION_BYTES = 16 * 1024 * 1024
#: The serving job and its layout asset.
LAYOUT_JOB = "layout_building_job"
LAYOUT_ASSET = "completed_layout"
#: Layout metadata: the layout document itself, and the content hash of its input
#: (``ceilgrid submit --wait`` matches its document against it).
LAYOUT_METADATA_KEY = "layout"
INPUT_HASH_METADATA_KEY = "input_sha256"


#: A building id is its own partition key and storage folder name, so it must be
#: safe as a folder name on every platform: ASCII letters, digits, ``.``, ``_``
#: and ``-``, starting with a letter or digit, not ending with ``.``, at most
#: :data:`MAX_BUILDING_ID` characters, and not a name Windows reserves.
BUILDING_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_BUILDING_ID = 100
_WINDOWS_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\..*)?", re.IGNORECASE)


def building_partition_key(building_id: str, source: str = "<input>") -> str:
    """The partition key (also the storage folder name) of a building id: the id itself.

    An id outside the documented character set is refused with an
    :class:`InputError`, not rewritten: a rewrite could map two ids to one key
    (one building overwriting another) and would hide from the submitter which
    key their building got. Refusing ``..``, separators, NUL, look-alike dots and
    reserved names here means no id can name a path outside its folder.
    """
    problem = building_id_problem(building_id)
    if problem is not None:
        raise InputError(problem, source=source, field_name="building_id")
    return building_id


def building_id_problem(building_id: str) -> str | None:
    """Why ``building_id`` cannot be a partition key (one line), or None when it can."""
    if not isinstance(building_id, str) or not building_id:
        return "building id must be a non-empty string"
    shown = ascii(building_id[:40] + ("..." if len(building_id) > 40 else ""))
    if len(building_id) > MAX_BUILDING_ID:
        return f"building id is {len(building_id)} characters, more than {MAX_BUILDING_ID}"
    if not BUILDING_ID_PATTERN.fullmatch(building_id) or building_id.endswith("."):
        return (
            f"building id {shown} is not a safe key: use ASCII letters, digits, '.', '_' "
            "and '-', starting with a letter or digit and not ending with '.'"
        )
    if _WINDOWS_RESERVED.fullmatch(building_id):
        return f"building id {shown} is a name Windows reserves for a device"
    return None


def case_collision(key: str, existing: Iterable[str]) -> str | None:
    """An existing key that differs from ``key`` only in letter case, if any.

    Two such buildings would share one folder on a case-insensitive file system
    (a macOS or Windows volume holding the storage), so the second is refused.
    """
    folded = key.casefold()
    return next((other for other in existing if other != key and other.casefold() == folded), None)
