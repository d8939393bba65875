"""Blocking asset checks on the model evaluation: they decide whether new models are promoted."""

from typing import Any

import dagster as dg

from ceilgrid_assets.defs.resources import ModelStore
from ceilgrid_assets.defs.training.models import model_evaluation


@dg.asset_check(
    asset=model_evaluation,
    blocking=True,
    description="Blocks promotion unless every component's learned candidate is compliant on "
    "100 % of held-out rooms after repair, synthetic and served alike.",
)
def evaluation_fully_compliant(model_evaluation: Any) -> dg.AssetCheckResult:
    from ceilgrid_assets.core.learning.evaluation import noncompliant  # training stack

    failing = noncompliant(model_evaluation)
    return dg.AssetCheckResult(
        passed=not failing,
        metadata={
            "failing": dg.MetadataValue.json(failing),
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
    from ceilgrid_assets.core.learning.evaluation import regressions  # training stack

    promoted = model_store.promoted_record()
    found = regressions(model_evaluation, promoted)
    return dg.AssetCheckResult(
        passed=not found,
        metadata={
            "regressions": dg.MetadataValue.json(found),
            "promoted_at": (promoted or {}).get("promoted_at", "never"),
        },
    )
