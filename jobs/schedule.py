"""The one schedule, used by `rq cron jobs/cron.py` in production and by the embedded runner."""

SWEEP_JOB_TIMEOUT = 1800
DISPATCH_JOB_TIMEOUT = 600
DISPATCH_INTERVAL_SECONDS = 60


def entries(config) -> list[dict]:
    """The jobs and their intervals: the sweeps every SWEEP_INTERVAL_MINUTES, the e-mail
    catch-up every minute, the audit checkpoint every AUDIT_CHECKPOINT_MINUTES. `config` is a
    mapping (the app's config or `load_config()`)."""
    from jobs.tasks import audit_checkpoint, dispatch_outbox, run_sweeps

    return [
        {"func": run_sweeps, "interval": int(config["SWEEP_INTERVAL_MINUTES"]) * 60,
         "job_timeout": SWEEP_JOB_TIMEOUT},
        {"func": dispatch_outbox, "interval": DISPATCH_INTERVAL_SECONDS,
         "job_timeout": DISPATCH_JOB_TIMEOUT},
        {"func": audit_checkpoint, "interval": int(config["AUDIT_CHECKPOINT_MINUTES"]) * 60,
         "job_timeout": SWEEP_JOB_TIMEOUT},
    ]


def load_config() -> dict:
    """The settings of the config class named by RESERVKORT_CONFIG (default config.Config),
    read without building an app."""
    import os

    from werkzeug.utils import import_string

    config_class = import_string(os.environ.get("RESERVKORT_CONFIG", "config.Config"))
    return {name: getattr(config_class, name) for name in dir(config_class) if name.isupper()}
