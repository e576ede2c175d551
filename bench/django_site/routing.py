"""Django's own tables (logins, sessions) in the default database, a temporary SQLite file;
the Reservkort tables in `bench`, the bench's PostgreSQL database, never migrated."""

BENCH_APP = "django_site"


class BenchRouter:
    def db_for_read(self, model, **hints):
        return "bench" if model._meta.app_label == BENCH_APP else "default"

    db_for_write = db_for_read

    def allow_relation(self, first, second, **hints):
        # Within one database only.
        return self.db_for_read(first) == self.db_for_read(second)

    def allow_migrate(self, db, app_label, **hints):
        return db == "default" and app_label != BENCH_APP
