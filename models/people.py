"""People (recipients, attesters, managers) and the link from a login account to its person."""

from flask_appbuilder import Model
from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Index, Integer, String, Table, text
from sqlalchemy.orm import relationship

unit_managers = Table(
    "unit_managers",
    Model.metadata,
    Column("unit_id", Integer, ForeignKey("units.id", ondelete="CASCADE"), primary_key=True),
    Column("person_id", Integer, ForeignKey("people.id", ondelete="CASCADE"), primary_key=True,
           index=True),
)


class Person(Model):
    __tablename__ = "people"
    __table_args__ = (
        Index("ix_people_name_id", "name", "id"),  # the people list's order (cleared logins)
        # The protected people (access.protected_identities), a few rows.
        Index("ix_people_protected", "id", postgresql_where=text("protected_identity IS true"),
              sqlite_where=text("protected_identity IS true")),
        # On PostgreSQL migration 0008_search adds a trigram index on name for the search box
        # (app.search); SQLite has no such kind, so it is not declared here.
        # ix_people_shown_name_id (PostgreSQL, the list's order as the mask sorts): migration
        # 0009_scale2 only, an expression index in the default language's mask.
    )

    id = Column(Integer, primary_key=True)
    hsa_id = Column(String(64), nullable=False, unique=True)
    # Normalised to 12 digits (YYYYMMDDNNNN); empty for people without a Swedish number.
    personal_number = Column(String(12), unique=True)
    name = Column(String(200), nullable=False)
    email = Column(String(254))
    unit_id = Column(Integer, ForeignKey("units.id"), index=True)
    protected_identity = Column(Boolean, nullable=False, default=False)
    # SITHS card-office role (RA, ORA, KRA, LRA) that excludes the person from attesting.
    card_office_role = Column(String(16))
    created_at = Column(DateTime)

    unit = relationship("Unit", lazy="joined")
    # The units this person is a manager of (role Chef): the one notion of manager.
    managed_units = relationship("Unit", secondary=unit_managers, back_populates="managers")
    kobe = relationship("KobeRecord", uselist=False, back_populates="person", lazy="joined")

    def __repr__(self):
        return f"{self.name} ({self.hsa_id})"


class AccountLink(Model):
    """Which person a login account (FAB's ab_user) belongs to."""

    __tablename__ = "account_links"

    id = Column(Integer, primary_key=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False,
                     unique=True)
    person_id = Column(Integer, ForeignKey("people.id"), nullable=False, unique=True)
    # Cleared to see people with protected identity unmasked.
    protected_identity_clearance = Column(Boolean, nullable=False, default=False)

    user = relationship("User")
    person = relationship(Person, lazy="joined")


class RetiredLogin(Model):
    """A deleted login account and the person it belonged to, written by the database itself
    when the login is deleted (migration 0012): its audit rows and the columns that name it by
    its username stay masked when its person is (or becomes) protected."""

    __tablename__ = "retired_logins"

    user_id = Column(Integer, primary_key=True, autoincrement=False)
    username = Column(String(128), nullable=False)
    person_id = Column(Integer, ForeignKey("people.id", ondelete="CASCADE"), nullable=False)
    retired_at = Column(DateTime, nullable=False)


class ProtectedGeneration(Model):
    """A token that database triggers change whenever what identifies a protected person does
    (their insert, protection, name, number, e-mail or removal; a login link; a username): a
    process may keep the protected people it read while the token is the same. One row (id 1);
    migration 0011 holds the triggers."""

    __tablename__ = "protected_generation"

    id = Column(Integer, primary_key=True)
    token = Column(String(32), nullable=False)
