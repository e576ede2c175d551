"""Organisations: their type (with the attester count it allows) and the units people belong to."""

from flask_appbuilder import Model
from sqlalchemy import CheckConstraint, Column, ForeignKey, Integer, String
from sqlalchemy.orm import relationship

from models._types import one_of

ORG_TYPES = ("region", "private_care_provider", "municipality")


class OrganisationType(Model):
    __tablename__ = "organisation_types"
    __table_args__ = (
        one_of("code", ORG_TYPES, "ck_organisation_types_code"),
        CheckConstraint("attesters_required BETWEEN 1 AND 5", name="ck_org_types_attesters"),
    )

    code = Column(String(32), primary_key=True)
    name = Column(String(100), nullable=False)
    attesters_required = Column(Integer, nullable=False, default=2)

    def __repr__(self):
        return self.name


class Unit(Model):
    __tablename__ = "units"

    id = Column(Integer, primary_key=True)
    name = Column(String(200), nullable=False)
    hsa_id = Column(String(64), unique=True)
    org_type_code = Column(
        String(32), ForeignKey("organisation_types.code"), nullable=False, index=True
    )
    parent_id = Column(Integer, ForeignKey("units.id"), index=True)

    org_type = relationship(OrganisationType, lazy="joined")
    parent = relationship("Unit", remote_side=[id])
    # Its managers (people with a Chef login); they are responsible for every unit below too.
    managers = relationship("Person", secondary="unit_managers", back_populates="managed_units",
                            order_by="Person.hsa_id")

    @property
    def manager_hsa_ids(self) -> list[str]:
        return [person.hsa_id for person in self.managers]

    def __repr__(self):
        return self.name
