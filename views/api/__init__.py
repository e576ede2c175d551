"""The REST API of shared/API.md (being written)."""


def register(appbuilder) -> None:
    pass
