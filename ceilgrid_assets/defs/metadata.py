"""Metadata helpers: pandas frames as tables the Dagster UI renders."""

import math
from typing import Any

import dagster as dg
import pandas as pd


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def frame_table(frame: pd.DataFrame) -> dg.TableMetadataValue:
    records = [dg.TableRecord({str(key): _plain(value) for key, value in row.items()})
               for row in frame.to_dict(orient="records")]
    return dg.MetadataValue.table(records)
