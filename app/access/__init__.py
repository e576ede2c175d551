"""The access policy: who may see and do what. `scope` holds the row scope of each role."""

from app.access.scope import (
    deviations_in_scope,
    people_in_scope,
    reaches_unit,
    require_unit,
    sees_all,
    unit_ids,
    units_below,
)

__all__ = ["deviations_in_scope", "people_in_scope", "reaches_unit", "require_unit", "sees_all",
           "unit_ids", "units_below"]
