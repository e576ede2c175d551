"""A record of each sweep run: when the deadlines were last checked and what changed."""

from flask_appbuilder import Model
from sqlalchemy import JSON, Column, DateTime, Integer, String


class SweepRun(Model):
    __tablename__ = "sweep_runs"

    id = Column(Integer, primary_key=True)
    started_at = Column(DateTime, nullable=False, index=True)
    finished_at = Column(DateTime)
    as_of = Column(DateTime, nullable=False)
    trigger = Column(String(32), nullable=False, default="schedule")
    result = Column(JSON)
