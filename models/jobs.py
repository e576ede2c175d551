"""Records of work done by jobs: each sweep run (when the deadlines were last checked and what
changed) and each big export (its progress and file)."""

from flask_appbuilder import Model
from sqlalchemy import JSON, Column, DateTime, ForeignKey, Integer, String, Text


class SweepRun(Model):
    __tablename__ = "sweep_runs"

    id = Column(Integer, primary_key=True)
    started_at = Column(DateTime, nullable=False, index=True)
    finished_at = Column(DateTime)
    as_of = Column(DateTime, nullable=False)
    trigger = Column(String(32), nullable=False, default="schedule")
    result = Column(JSON)


EXPORT_STATUSES = ("queued", "running", "done", "failed")


class ExportJob(Model):
    """A big export built by a job: who asked, for what, how far it got, and the file."""

    __tablename__ = "export_jobs"

    id = Column(Integer, primary_key=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False,
                     index=True)
    kind = Column(String(32), nullable=False)
    format = Column(String(8), nullable=False)
    layout = Column(String(16), nullable=False)
    filters = Column(JSON)
    status = Column(String(16), nullable=False, default="queued")
    rows_done = Column(Integer, nullable=False, default=0)
    rows_total = Column(Integer)
    filename = Column(String(200), nullable=False)
    file_path = Column(String(500))
    error = Column(Text)
    created_at = Column(DateTime, nullable=False)
    finished_at = Column(DateTime)
