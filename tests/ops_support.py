"""A private PostgreSQL cluster for the fault tests: its own data directory and port, started,
restarted and stopped by the test (never the shared server). initdb/pg_ctl come from the
installed PostgreSQL; as root they run as the `postgres` user, which owns the directory.

Import the fixture explicitly: `from tests.ops_support import pg_cluster`.
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.job_support import free_port, wait_until


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    if not pg_ctl:
        raise RuntimeError("pg_ctl not found: the fault tests need PostgreSQL's server binaries")
    return Path(pg_ctl).parent


class PgCluster:
    def __init__(self):
        self.bin = _bin_dir()
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="rk-pg-"))
        self.data = self.folder / "data"
        self.as_postgres = os.geteuid() == 0  # the server refuses to run as root
        if self.as_postgres:
            owner = pwd.getpwnam("postgres")
            os.chmod(self.folder, 0o700)
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)

    def _run(self, *command, check=True):
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        return subprocess.run([*prefix, *command], check=check, capture_output=True, text=True,
                              timeout=60)

    def init(self):
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                  "postgres", "--no-sync", "-E", "UTF8")

    def start(self):
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder}"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.folder / "server.log"), "-w", "-t", "30", "start")

    def stop(self, mode="fast"):
        """`immediate` is a crash: every connection is cut without goodbye."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop",
                  check=False)

    def answers(self) -> bool:
        try:
            psycopg.connect(self.dsn("postgres"), connect_timeout=1).close()
            return True
        except psycopg.OperationalError:
            return False

    def dsn(self, database):
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def url(self, database):
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self):
        return psycopg.connect(self.dsn("postgres"), autocommit=True)

    def create_database(self, template=None) -> str:
        name = f"rk_{uuid.uuid4().hex[:10]}"
        connection = self.admin()
        try:
            # FILE_COPY checkpoints around the copy: with the default WAL_LOG strategy a crash
            # soon after can replay the template's sequence state and reuse primary keys.
            suffix = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
            connection.cursor().execute(f'CREATE DATABASE "{name}"{suffix}')
        finally:
            connection.close()
        return name

    def destroy(self):
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_cluster(tmp_path_factory):
    """A running private cluster with a migrated demo database `template` to copy per test."""
    from tests.conftest import _prepare

    cluster = PgCluster()
    try:
        cluster.init()
        cluster.start()
        wait_until(cluster.answers, 20, "the private PostgreSQL to answer")
        cluster.template = cluster.create_database()
        _prepare(cluster.url(cluster.template), str(tmp_path_factory.mktemp("pg-template")))
        yield cluster
    finally:
        cluster.destroy()
