"""python -m bench [--database-url URL] [--scale 1.0] [--keep] [--no-fill]

Creates (or takes) a PostgreSQL database, migrates and fills it, runs every measurement and
prints the result table. A measurement that fails prints `error: ...` in its row; the rest go on.
"""

import argparse
import logging
import os
import secrets
import sys
import tempfile
import time
import traceback
import warnings

from sqlalchemy import text

from app.extensions import db
from bench import concurrency, database, django_admin, measure
from bench.fill import Sizes, fill
from bench.measure import Row

HEADER = ("figure", "measured", "floor", "ratio", "target", "ok?")


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[2])
    parser.add_argument("--database-url", help="an existing EMPTY PostgreSQL database to "
                        "migrate and fill (never dropped); default: creates "
                        f"{database.DEFAULT_URL.rsplit('/', 1)[1]} on 127.0.0.1:5432")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="1.0 = 1,000,000 people and issuances (default)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the database it created after the run")
    parser.add_argument("--no-fill", action="store_true",
                        help="measure a database filled by an earlier run (with --keep)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this measurement (repeatable): "
                        + ", ".join(f"'{name}'" for name in MEASUREMENTS))
    return parser.parse_args(argv)


def note(message):
    print(message, file=sys.stderr, flush=True)


def machine_facts(flask_app) -> list[str]:
    with flask_app.app_context():
        version = db.session.execute(text("SHOW server_version")).scalar()
        db.session.remove()
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return [f"CPUs (nproc): {len(os.sched_getaffinity(0))}",
            f"memory: {total_kib / 2**20:.1f} GiB", f"PostgreSQL: {version}",
            f"load average at the start of the measurements: {load}",
            f"Python: {sys.version.split()[0]}"]


def prepare(args, url, instance):
    """The app on a migrated, filled database."""
    if args.no_fill:
        return database.bench_app(url, instance)
    if args.database_url is None:
        database.recreate(url)
    started = time.perf_counter()
    flask_app = database.migrate_and_load(url, instance)
    note(f"migrated and loaded the demo data in {time.perf_counter() - started:.1f} s")
    sizes = Sizes.at(args.scale)
    started = time.perf_counter()
    with flask_app.app_context():
        counts = fill(sizes)
        db.session.remove()
    rows = sum(counts.values())
    note(f"filled {rows:,} rows in {time.perf_counter() - started:.1f} s (COPY, then ANALYZE): "
         + ", ".join(f"{table} {count:,}" for table, count in counts.items()))
    return flask_app


def measurements(flask_app, engine, url, scale):
    return (
        ("approval queue", lambda: measure.approval_queue(flask_app, engine)),
        ("issuance list", lambda: measure.issuance_list(flask_app, engine)),
        ("screens", lambda: measure.screens(flask_app, engine)),
        ("screens vs Django admin", lambda: django_admin.compare(flask_app, engine)),
        ("statements per page", lambda: measure.statements_per_page(flask_app, engine)),
        ("receipt PDF", lambda: measure.receipt_pdf(flask_app, engine)),
        ("deviation export", lambda: measure.deviation_export(flask_app, engine)),
        ("sweeps", lambda: measure.sweeps(flask_app, engine)),
        ("concurrent applications",
         lambda: concurrency.concurrent_applications(flask_app, url, scale)),
    )


# The names, for --only (the lambdas are not called).
MEASUREMENTS = tuple(name for name, _run in measurements(None, None, None, None))


def run_all(flask_app, url, scale, only=None) -> list[Row]:
    with flask_app.app_context():
        engine = db.engine
    rows = []
    for name, run in measurements(flask_app, engine, url, scale):
        if only and name not in only:
            continue
        started = time.perf_counter()
        try:
            found = run()
        except Exception as exc:  # a failing measurement is a row, never the end of the run
            traceback.print_exc(file=sys.stderr)
            found = [Row(name, f"error: {exc}".replace("\n", " ")[:300])]
        note(f"{name}: {time.perf_counter() - started:.1f} s")
        rows += found
    return rows


def table(rows) -> str:
    cells = [HEADER] + [(r.figure, r.value, r.floor, r.ratio, r.target, r.ok) for r in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(HEADER))]

    def render(row):
        cells_padded = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        return "| " + " | ".join(cells_padded) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([render(cells[0]), rule, *map(render, cells[1:])])


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message="The HMAC key")
    for noisy in ("flask_appbuilder", "alembic", "app", "jobs", "xhtml2pdf"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    args = parse(argv)
    # One key for the run: the bench's app and the server it starts seal the audit chain alike.
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
    unknown = set(args.only or ()) - set(MEASUREMENTS)
    if unknown:
        print(f"unknown measurement: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    url = args.database_url or database.DEFAULT_URL
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rk-bench-") as instance:
        flask_app = prepare(args, url, instance)
        facts = machine_facts(flask_app)
        rows = run_all(flask_app, url, args.scale, args.only)
        with flask_app.app_context():
            db.engine.dispose()
    print(f"Reservkort bench, scale {args.scale:g}, {time.perf_counter() - started:.0f} s in all")
    print("\n".join("- " + fact for fact in facts))
    print()
    print(table(rows))
    if args.database_url is None and not args.keep and not args.no_fill:
        database.drop(url)
    return 0 if all(row.ok != "NO" and not row.value.startswith("error") for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
