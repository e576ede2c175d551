"""Worker classes.

`AppWorker` (production: `rq worker --worker-class jobs.worker.AppWorker reservkort`) builds
the app once before forking, so each job does not pay for create_app. `ThreadWorker` runs
inside the embedded runner's thread: no signal handlers (only the main thread may set them) and
a timer instead of SIGALRM for job timeouts.
"""

from rq.timeouts import TimerDeathPenalty
from rq.worker import SimpleWorker, Worker

from jobs import context


class AppWorker(Worker):
    def work(self, *args, **kwargs):
        context.get_app()
        return super().work(*args, **kwargs)


class ThreadWorker(SimpleWorker):
    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self):
        return None
