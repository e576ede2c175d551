"""The REST API of shared/API.md: FAB's REST API with JWT, under /api/v1/."""


def register(appbuilder) -> None:
    from views.api import fab
    from views.api.deviations import DeviationApi, ReportApi
    from views.api.issuances import IssuanceApi, MailIssuanceApi
    from views.api.registers import CardApi, KobeApi, PersonApi, PickupPointApi, UnitApi

    for api in (CardApi, PersonApi, PickupPointApi, UnitApi, KobeApi, IssuanceApi,
                MailIssuanceApi, DeviationApi, ReportApi):
        appbuilder.add_api(api)
    fab.register(appbuilder)
