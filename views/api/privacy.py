"""Protected identity lives in app.privacy; kept here for the screens that import it from
this module."""

from app.privacy import MASK, current_user_cleared, person_view

__all__ = ["MASK", "current_user_cleared", "person_view"]
