"""The operations commands: `flask reservkort ...`. Each is a thin call into app/."""

import sys

import click
from flask.cli import AppGroup

reservkort = AppGroup("reservkort", help="Reservkort operations.")


@reservkort.command("demo")
def demo_command():
    """Load the demo data (idempotent) and print the demo logins once. Only for the embedded
    start (`make run`) and the tests: a deployed back office never gets the demo's known
    passwords."""
    from flask import current_app

    from app import demo

    if not (current_app.config.get("EMBEDDED") or current_app.config.get("TESTING")):
        click.echo("The demo data and its logins belong to the embedded start (make run) only; "
                   "set RESERVKORT_EMBEDDED=1 to load them on a machine that is not deployed.",
                   err=True)
        raise SystemExit(1)
    created = demo.load()
    if created:
        click.echo("Demo data loaded. Logins (username / password / role):")
        for username, password, roles in created:
            click.echo(f"  {username:<16} {password:<14} {', '.join(roles)}")
    else:
        click.echo("Demo data already present.")


@reservkort.command("create-user")
@click.option("--username", required=True)
@click.option("--password", required=True)
@click.option("--role", "roles", multiple=True, required=True)
@click.option("--hsa-id", default=None, help="Link the login to the person with this HSA-id.")
@click.option("--email", default=None)
@click.option("--first-name", default=None)
@click.option("--last-name", default=None)
@click.option("--protected-identity-clearance", is_flag=True, default=False,
              help="Let the login see people with protected identity (needs --hsa-id).")
def create_user_command(username, password, roles, hsa_id, email, first_name, last_name,
                        protected_identity_clearance):
    """Create a login with its roles, linked to a person (a person has at most one login)."""
    from app import accounts
    from app.errors import NotFound, RuleViolation
    from app.validation import FieldError

    try:
        user = accounts.create_user(username, password, list(roles), hsa_id=hsa_id, email=email,
                                    first_name=first_name, last_name=last_name,
                                    protected_identity_clearance=protected_identity_clearance)
    except FieldError as exc:
        raise click.ClickException(f"--{exc.field.replace('_', '-')}: {exc.message}") from exc
    except (RuleViolation, NotFound, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    cleared = ", cleared for protected identity" if protected_identity_clearance else ""
    click.echo(f"Created {user.username} ({', '.join(roles)}{cleared})")


@reservkort.command("set-password")
@click.option("--username", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def set_password_command(username, password):
    """Give a login a new password (checked against the password policy)."""
    from flask import current_app

    from app import passwords

    user = current_app.appbuilder.sm.find_user(username=username)
    if user is None:
        raise click.ClickException(f"no login {username}")
    try:
        passwords.set_password(user, password)
    except passwords.PasswordPolicyError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"The password of {username} is changed.")


@reservkort.command("audit-verify")
@click.option("--from-checkpoint", is_flag=True,
              help="Check only the rows after the newest valid checkpoint.")
@click.option("--checkpoint", "record", is_flag=True,
              help="Record the verified head as a new checkpoint.")
def audit_verify_command(from_checkpoint, record):
    """Check the audit chain and its checkpoints; exit 1 naming every bad row."""
    from app import audit

    if record:
        row = audit.checkpoint(from_checkpoint=from_checkpoint)
        ok, breaks, checked = row.ok, row.breaks or [], row.rows_checked
        messages = [(entry["id"], audit.describe(entry)) for entry in breaks]
    else:
        result = audit.verify(from_checkpoint=from_checkpoint)
        ok, checked = result.ok, result["rows_checked"]
        messages = [(entry["id"], audit.describe(entry)) for entry in result["breaks"]]
    if ok:
        click.echo(f"Audit log intact ({checked} rows checked).")
        return
    for row_id, why in messages:
        click.echo(f"Audit log broken at row {row_id}: {why}", err=True)
    click.echo(f"{len(messages)} break(s) found.", err=True)
    sys.exit(1)


@reservkort.command("sweep")
@click.option("--at", "at", default=None,
              help="ISO time to run the sweeps as of (default now); without an offset it is "
                   "Swedish local time.")
def sweep_command(at):
    """Run every deadline sweep once and print what changed."""
    from app import clock
    from app.workflow import sweeps

    moment = clock.now()
    if at:
        try:
            moment = clock.parse_moment(at)
        except ValueError as exc:
            raise click.BadParameter(f"not an ISO 8601 time: {at}", param_hint="--at") from exc
    result = sweeps.run_all(moment, trigger="command")
    for name, count in result.items():
        click.echo(f"{name}: {count}")


@reservkort.command("init")
def init_command():
    """After `flask db upgrade`: roles, permissions and reference data (idempotent)."""
    from app.bootstrap import init_security_and_reference_data

    init_security_and_reference_data()
    click.echo("Roles, permissions and reference data are in place.")


@reservkort.command("deploy")
def deploy_command():
    """Once per deploy, before starting the new version: the migrations, then roles,
    permissions and reference data. Exit 1 naming the step that failed."""
    from app.bootstrap import DeployError, deploy

    try:
        deploy(echo=click.echo)
    except DeployError as exc:
        click.echo(f"Deploy failed at {exc}", err=True)
        sys.exit(1)
    click.echo("Deploy steps done.")


def register(flask_app) -> None:
    flask_app.cli.add_command(reservkort)
