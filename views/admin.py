"""(being written)"""


def register(appbuilder) -> None:
    pass
