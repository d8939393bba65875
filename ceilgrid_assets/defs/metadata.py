"""Metadata helpers: rows and pandas frames as tables the Dagster UI renders."""

import math
from typing import Any

import dagster as dg


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def rows_table(rows: list[dict[str, Any]]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        [dg.TableRecord({str(key): _plain(value) for key, value in row.items()}) for row in rows]
    )


def frame_table(frame: Any) -> dg.TableMetadataValue:
    """A pandas DataFrame (imported by the caller) as a table."""
    return rows_table(frame.to_dict(orient="records"))
