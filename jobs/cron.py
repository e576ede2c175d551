"""The cron table for `rq cron jobs/cron.py --url $REDIS_URL`.

Running two schedulers by mistake is harmless: the sweeps are idempotent and the outbox claims
each message once.
"""

from rq import cron

from jobs.queue import QUEUE_NAME
from jobs.schedule import entries, load_config

for entry in entries(load_config()):
    cron.register(entry["func"], queue_name=QUEUE_NAME, interval=entry["interval"],
                  job_timeout=entry["job_timeout"])
