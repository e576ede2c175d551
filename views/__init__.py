"""Every screen and REST API is registered here, in one place."""

from importlib import import_module

# Each module has register(appbuilder). Order is menu order.
MODULES = (
    "views.menu",
    "views.home",
    "views.accessibility",
    "views.wizard",
    "views.approval",
    "views.stock",
    "views.issuances",
    "views.mail_flow",
    "views.deviations",
    "views.registers",
    "views.admin",
    "views.accounts",
    "views.signin",
    "views.api",
)


def register_all(appbuilder) -> None:
    for name in MODULES:
        import_module(name).register(appbuilder)
