"""Blocking asset checks on the model evaluation: they decide whether new models are promoted."""

from typing import Any

import dagster as dg

from ceilgrid_assets.defs.resources import ModelStore
from ceilgrid_assets.defs.training.models import model_evaluation

#: A new model may place at most this much more (relative) than the promoted one.
DEVICE_RATIO_TOLERANCE = 0.01
SYNTHETIC = "synthetic"


def regressions(
    candidate: Any, promoted: dict[str, Any] | None, tolerance: float = DEVICE_RATIO_TOLERANCE
) -> list[str]:
    """Slices and components whose device ratio to the reference, or compliance, is worse
    than the promoted models' (a slice or component the promoted set was not evaluated on
    has nothing to regress from; records from before slices were synthetic only)."""
    if promoted is None:
        return []
    before = {_slice_key(row): row for row in promoted["evaluation"]}
    found = []
    for row in candidate.to_dict(orient="records"):
        old = before.get(_slice_key(row))
        if old is None:
            continue
        where = f"{row.get('slice', SYNTHETIC)} {row['component']}"
        if row["devices_vs_reference"] > old["devices_vs_reference"] * (1 + tolerance):
            found.append(
                f"{where}: {row['devices_vs_reference']:.4f} devices per "
                f"reference device, promoted {old['devices_vs_reference']:.4f}"
            )
        if row["compliance_after_repair"] < old["compliance_after_repair"]:
            found.append(
                f"{where}: compliance {row['compliance_after_repair']:.4f}, "
                f"promoted {old['compliance_after_repair']:.4f}"
            )
    return found


def _slice_key(row: dict[str, Any]) -> tuple[str, str]:
    return (row.get("slice", SYNTHETIC), row["component"])


@dg.asset_check(
    asset=model_evaluation,
    blocking=True,
    description="Blocks promotion unless every component's learned candidate is compliant on "
    "100 % of held-out rooms after repair, synthetic and served alike.",
)
def evaluation_fully_compliant(model_evaluation: Any) -> dg.AssetCheckResult:
    failing = model_evaluation[model_evaluation["compliance_after_repair"] < 1.0]
    return dg.AssetCheckResult(
        passed=failing.empty,
        metadata={
            "failing": dg.MetadataValue.json(
                [f"{row['slice']} {row['component']}" for row in failing.to_dict("records")]
            ),
            "min_compliance": float(model_evaluation["compliance_after_repair"].min()),
        },
    )


@dg.asset_check(
    asset=model_evaluation,
    blocking=True,
    description="Blocks promotion of models that are worse than the promoted ones on either "
    "slice, synthetic or served held-out rooms (more devices per reference device beyond "
    "1 %, or lower compliance).",
)
def evaluation_not_worse_than_promoted(
    model_evaluation: Any, model_store: ModelStore
) -> dg.AssetCheckResult:
    promoted = model_store.promoted_record()
    found = regressions(model_evaluation, promoted)
    return dg.AssetCheckResult(
        passed=not found,
        metadata={
            "regressions": dg.MetadataValue.json(found),
            "promoted_at": (promoted or {}).get("promoted_at", "never"),
        },
    )
