"""Small helpers shared by the model modules."""

from sqlalchemy import CheckConstraint


def one_of(column, values, name):
    """A check constraint that keeps an enumeration column inside its allowed words."""
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=name)
