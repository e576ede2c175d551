"""The access policy: who may see and do what. `scope` holds the row scope of each role."""

from app.access.scope import (
    deviations_in_scope,
    managed_roots,
    people_in_scope,
    reaches_unit,
    require_unit,
    responsible_managers,
    sees_all,
    unit_ids,
    units_below,
)

__all__ = ["deviations_in_scope", "managed_roots", "people_in_scope", "reaches_unit",
           "require_unit", "responsible_managers", "sees_all", "unit_ids", "units_below"]
