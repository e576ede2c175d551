"""Concurrent applications through the real server: gunicorn with the project's own settings
(gunicorn.conf.py: one sync worker per core, the access log), and clients on plain urllib,
each the first attester of its own pair.

Shows the throughput, that no person and no card ends up with two open issuances, and that when
several clients race for the same card exactly one wins and the others get a 422.
"""

import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

from app import clock
from app.extensions import db
from bench.measure import DEMO_PASSWORD, Row, yes
from models import CLOSED_FOR_CARD, CLOSED_FOR_PERSON

REPO = Path(__file__).resolve().parent.parent
CLIENTS = 20
RACERS = 10
ATTESTER_PREFIX = "bench_att_"
READY_SECONDS = 120
# An application checks two passwords: the caller's, given again, and the second attester's.
CHECKS_PER_APPLICATION = 2
BOUND_SECONDS = 3.0
REQUEST_TIMEOUT = 120


def applications_per_client(scale: float) -> int:
    return max(2, min(10, round(100 * scale)))


# --- who applies for what ---------------------------------------------------------------------

ELIGIBLE = """
    SELECT p.id, p.hsa_id FROM people p JOIN kobe_register k ON k.person_id = p.id
    WHERE k.ordinary_card = 'active' AND NOT p.protected_identity
      AND p.personal_number IS NOT NULL AND p.card_office_role IS NULL
      AND p.hsa_id LIKE 'SE2321000131-B%'
      AND NOT EXISTS (SELECT 1 FROM account_links a WHERE a.person_id = p.id)
      AND NOT EXISTS (SELECT 1 FROM issuances i WHERE i.recipient_id = p.id)
      AND NOT EXISTS (SELECT 1 FROM reserve_cards c WHERE c.bound_person_id = p.id)
    ORDER BY p.id
"""


def attester_logins(pairs: int) -> list[tuple[str, str]]:
    """(first, second) attester usernames; logins are created once, linked to bench people
    who hold an active ordinary card."""
    from flask import current_app

    from app import accounts

    sm = current_app.appbuilder.sm
    names = [f"{ATTESTER_PREFIX}{k:02d}" for k in range(2 * pairs)]
    missing = [name for name in names if sm.find_user(username=name) is None]
    people = db.session.execute(text(ELIGIBLE + " LIMIT :n"), {"n": len(missing)}).all()
    if len(people) < len(missing):
        raise RuntimeError("not enough bench people to make attesters of")
    for name, (_, hsa_id) in zip(missing, people, strict=False):
        accounts.create_user(name, DEMO_PASSWORD, ["Intygsgivare"], hsa_id=hsa_id)
    return [(names[2 * k], names[2 * k + 1]) for k in range(pairs)]


def recipients(count: int) -> list[str]:
    """HSA-ids of people who may get a card: an active ordinary card, never a holder, no login."""
    rows = db.session.execute(text(ELIGIBLE + " OFFSET 200 LIMIT :n"), {"n": count}).all()
    if len(rows) < count:
        raise RuntimeError(f"only {len(rows)} recipients free, {count} needed")
    return [hsa_id for _, hsa_id in rows]


def sealed_cards(count: int) -> list[str]:
    rows = db.session.execute(text(
        "SELECT serial FROM reserve_cards WHERE status = 'in_stock' AND loa = 'LOA2' "
        "AND bound_person_id IS NULL AND expires_on > :day ORDER BY id LIMIT :n"),
        {"day": clock.today(), "n": count}).scalars().all()
    if len(rows) < count:
        raise RuntimeError(f"only {len(rows)} sealed cards free, {count} needed")
    return list(rows)


def doubles() -> tuple[int, int]:
    """People and cards with more than one open issuance (must both be 0)."""
    def _in(values):
        return ", ".join(f"'{v}'" for v in values)

    people = db.session.execute(text(
        "SELECT count(*) FROM (SELECT recipient_id FROM issuances WHERE status NOT IN "
        f"({_in(CLOSED_FOR_PERSON)}) GROUP BY recipient_id HAVING count(*) > 1) d")).scalar()
    cards = db.session.execute(text(
        "SELECT count(*) FROM (SELECT card_id FROM issuances WHERE status NOT IN "
        f"({_in(CLOSED_FOR_CARD)}) GROUP BY card_id HAVING count(*) > 1) d")).scalar()
    return people, cards


# --- the server -------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(method, url, body=None, token=None):
    """(HTTP status, JSON answer or None)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as answer:
            return answer.status, _json(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, _json(error.read())


def _json(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return None


@contextmanager
def server(database_url):
    """The real server on a free port, stopped afterwards; yields its base URL."""
    port = _free_port()
    instance = Path(tempfile.mkdtemp(prefix="rk-bench-server-"))
    env = {**os.environ, "DATABASE_URL": database_url, "FAB_UPDATE_PERMS": "false",
           "RATELIMIT_ENABLED": "false", "REDIS_URL": "",
           "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(48),
           "RESERVKORT_INSTANCE": str(instance), "GUNICORN_BIND": f"127.0.0.1:{port}",
           "GUNICORN_CONTROL_SOCKET": str(instance / "gunicorn.ctl")}
    log_path = instance / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--graceful-timeout", "5",
             "app:create_app()"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process, log_path)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(instance, ignore_errors=True)


def _wait_ready(base, process, log_path):
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-600:]
            raise RuntimeError(f"gunicorn exited with {process.returncode}: {tail}")
        try:
            with urllib.request.urlopen(f"{base}/login/", timeout=5):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise RuntimeError(f"gunicorn not answering after {READY_SECONDS} s")


def login(base, username) -> str:
    status, answer = call("POST", f"{base}/api/v1/security/login", {
        "username": username, "password": DEMO_PASSWORD, "provider": "db", "refresh": True})
    if status != 200:
        raise RuntimeError(f"login of {username}: HTTP {status} {answer}")
    return answer["access_token"]


def application(serial, hsa_id, second_attester) -> dict:
    return {
        "card_serial": serial, "recipient_hsa_id": hsa_id, "reason": "forgotten",
        "second_attester": {"username": second_attester, "password": DEMO_PASSWORD},
        "password": DEMO_PASSWORD, "recipient_present": True, "envelope_unopened": True,
    }


def run_together(jobs) -> tuple[float, list]:
    """Run each job (a function) in its own thread, released at once; (seconds, results)."""
    results = [None] * len(jobs)
    gate = threading.Barrier(len(jobs) + 1)

    def worker(index, job):
        gate.wait()
        try:
            results[index] = job()
        except Exception as exc:  # handed to the caller, not lost in the thread
            results[index] = exc

    threads = [threading.Thread(target=worker, args=(k, job)) for k, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    failed = [result for result in results if isinstance(result, Exception)]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(jobs)} clients failed: {failed[0]}")
    return elapsed, results


# --- the measurement --------------------------------------------------------------------------

def concurrent_applications(flask_app, database_url, scale) -> list[Row]:
    per_client = applications_per_client(scale)
    with flask_app.app_context():
        pairs = attester_logins(CLIENTS)
        people = recipients(CLIENTS * per_client + RACERS + 2)
        cards = sealed_cards(CLIENTS * per_client + 3)
        hashed = password_hash(pairs[0][1])
        engine = db.engine
        db.session.remove()
    single = one_application(flask_app, engine, pairs[0], (people.pop(), cards.pop()),
                             people.pop(), cards.pop())
    started = time.perf_counter()
    with server(database_url) as base:
        _, tokens = run_together([lambda first=first: login(base, first) for first, _ in pairs])
        print(f"server up and {len(tokens)} clients logged in after "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        rows = [_throughput(base, pairs, tokens, people, cards, per_client, hashed)]
        rows.append(_race(base, pairs, tokens, people[-RACERS:], cards[-1]))
        print(f"applications and race done after {time.perf_counter() - started:.1f} s",
              file=sys.stderr, flush=True)
    with flask_app.app_context():
        person_doubles, card_doubles = doubles()
        db.session.remove()
    rows.insert(0, single)
    rows.append(Row("people / cards with two open issuances", f"{person_doubles} / {card_doubles}",
                    target="0 / 0", ok=yes(person_doubles == card_doubles == 0)))
    return rows


def one_application(flask_app, engine, pair, warm_up, hsa_id, serial) -> Row:
    """One application through the app: its SQL statements besides the second attester's
    password check (the login looked up, its statistics written) and its commits. An
    application before it (`warm_up`: recipient, card) is not counted: the bench has just
    made logins, so the first request re-reads what a running server keeps."""
    from sqlalchemy import event

    from bench.measure import Api, Statements

    api = Api(flask_app, pair[0])
    warmed = api.client.post("/api/v1/issuances/", json=application(
        warm_up[1], warm_up[0], pair[1]), headers=api.headers)
    if warmed.status_code != 201:
        raise RuntimeError(f"the warm-up application: HTTP {warmed.status_code}")
    commits = []

    def counted(conn):
        commits.append(1)

    event.listen(engine, "commit", counted)
    try:
        with Statements(engine) as seen:
            answer = api.client.post("/api/v1/issuances/", json=application(
                serial, hsa_id, pair[1]), headers=api.headers)
    finally:
        event.remove(engine, "commit", counted)
    check = [s for s, _, _ in seen.items
             if "lower(ab_user.username)" in s or s.lstrip().startswith("UPDATE ab_user")]
    statements = seen.count - len(check)
    value = f"{statements} statements, {len(commits)} commit(s)"
    if answer.status_code != 201:
        value += f"; HTTP {answer.status_code}"
    return Row("one application: statements besides the password check, commits", value,
               target="≤ 15, 1", ok=yes(answer.status_code == 201 and statements <= 15
                                         and len(commits) == 1))


def password_hash(username) -> str:
    """The stored hash of a login, so the bound checks with the same method and cost."""
    return db.session.execute(text("SELECT password FROM ab_user WHERE username = :u"),
                                    {"u": username}).scalar_one()


def checks_within(hashed, seconds) -> int:
    from werkzeug.security import check_password_hash

    done, until = 0, time.perf_counter() + seconds
    while time.perf_counter() < until:
        if not check_password_hash(hashed, DEMO_PASSWORD):
            raise ValueError("the bench logins' password does not match their hash")
        done += 1
    return done


def password_bound(hashed) -> float:
    """Applications per second if the machine did nothing but their password checks: one
    process per CPU checking passwords for BOUND_SECONDS."""
    cpus = len(os.sched_getaffinity(0))
    with ProcessPoolExecutor(cpus) as pool:
        checks = sum(pool.map(checks_within, [hashed] * cpus, [BOUND_SECONDS] * cpus))
    return checks / BOUND_SECONDS / CHECKS_PER_APPLICATION


def _throughput(base, pairs, tokens, people, cards, per_client, hashed) -> Row:
    """The clients' applications, with the password-check bound measured just before and just
    after them: the machine's speed drifts (a shared host), and their mean is the bound of
    the time between."""
    before = password_bound(hashed)
    row, rate, failed = _applications(base, pairs, tokens, people, cards, per_client)
    after = password_bound(hashed)
    bound = (before + after) / 2
    row.floor = (f"password checks alone: {bound:.1f} applications/s (before {before:.1f}, "
                 f"after {after:.1f})")
    row.ratio = f"{rate / bound:.0%}"
    row.ok = yes(not failed and rate >= 0.9 * bound)
    return row


def _applications(base, pairs, tokens, people, cards, per_client) -> tuple[Row, float, bool]:
    """(the row, applications per second, whether any failed)."""
    def client(k):
        def run():
            answers = []
            for n in range(per_client):
                slot = k * per_client + n
                started = time.perf_counter()
                status, answer = call("POST", f"{base}/api/v1/issuances/", application(
                    cards[slot], people[slot], pairs[k][1]), tokens[k])
                answers.append((status, answer, time.perf_counter() - started))
            return answers
        return run

    elapsed, results = run_together([client(k) for k in range(len(pairs))])
    answers = [answer for client_answers in results for answer in client_answers]
    created = sum(1 for status, _, _ in answers if status == 201)
    latencies = sorted(seconds for _, _, seconds in answers)
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    failures = [(status, (answer or {}).get("rule") or answer) for status, answer, _ in answers
                if status != 201]
    figure = f"{len(pairs)} clients applying at once ({len(answers)} applications)"
    rate = created / elapsed
    value = (f"{rate:.1f} applications/s (latency p50 "
             f"{statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms)")
    if failures:
        value += f"; {len(failures)} failed, first: {failures[0]}"
    return (Row(figure, value, target="every one 201, ≥ 90 % of the checks' bound"), rate,
            bool(failures))


def _race(base, pairs, tokens, people, serial) -> Row:
    def racer(k):
        return lambda: call("POST", f"{base}/api/v1/issuances/",
                            application(serial, people[k], pairs[k][1]), tokens[k])

    _, results = run_together([racer(k) for k in range(len(people))])
    won = sum(1 for status, _ in results if status == 201)
    refused = [(answer or {}).get("rule") for status, answer in results if status == 422]
    other = [status for status, _ in results if status not in (201, 422)]
    rules = ", ".join(sorted(set(filter(None, refused)))) or "-"
    value = f"{won} × 201, {len(refused)} × 422 ({rules})"
    if other:
        value += f", other: {other}"
    return Row(f"race: {len(people)} clients, one card", value, target="exactly one 201",
               ok=yes(won == 1 and len(refused) == len(people) - 1))
