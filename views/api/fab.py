"""FAB's own API endpoints that the back office keeps, with documents that say what they
answer: the OpenAPI document itself (401, 403 and 404 too) and the menu (whose entries may be the
separator "-"). FAB registers its own copies unless told not to (config: FAB_ADD_MENU_API,
FAB_ADD_OPENAPI_VIEWS); the class names stay, so the permissions are FAB's."""

from flask import current_app
from flask_appbuilder.api import BaseApi, expose, protect, safe
from flask_appbuilder.api.manager import OpenApi as FabOpenApi
from flask_appbuilder.api.manager import SwaggerView
from flask_appbuilder.menu import MenuApi as FabMenuApi
from flask_appbuilder.security.decorators import permission_name

from app.api_contract import DocumentedErrorsMixin


class OpenApi(DocumentedErrorsMixin, FabOpenApi):
    @expose("/<version>/_openapi")
    @protect()
    @safe
    def get(self, version):
        """The OpenAPI document of one API version.
        ---
        get:
          description: The OpenAPI document of every endpoint of an API version
          parameters:
          - {in: path, name: version, required: true, schema: {type: string}}
          responses:
            200:
              description: The OpenAPI document
              content:
                application/json:
                  schema:
                    type: object
        """
        api_spec = self._create_api_spec(version)
        apis = [view for view in current_app.appbuilder.baseviews
                if isinstance(view, BaseApi) and view.version == version]
        for api in apis:
            api.add_api_spec(api_spec)
        if not apis:
            return self.response_404()
        return self.response(200, **api_spec.to_dict())


class MenuApi(DocumentedErrorsMixin, FabMenuApi):
    @expose("/", methods=["GET"])
    @protect(allow_browser_login=True)
    @permission_name("get")
    def get_menu_data(self):
        """The menu of the logged-in user.
        ---
        get:
          description: The menu the user has access to, as a forest
          responses:
            200:
              description: The menu
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      result:
                        type: array
                        items:
                          $ref: '#/components/schemas/MenuItem'
        """
        return self.response(200, result=current_app.appbuilder.menu.get_data())

    def add_apispec_components(self, api_spec):
        super().add_apispec_components(api_spec)
        if "MenuItem" not in api_spec.components.schemas:
            api_spec.components.schema("MenuItem", {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "label": {"type": "string"},
                    "icon": {"type": "string"},
                    "url": {"type": "string"},
                    "childs": {"type": "array", "items": {"anyOf": [
                        {"type": "object"},
                        {"type": "string", "description": "A separator: \"-\""},
                    ]}},
                },
            })


def register(appbuilder) -> None:
    appbuilder.add_api(OpenApi)
    appbuilder.add_api(MenuApi)
    if current_app.config.get("FAB_API_SWAGGER_UI"):
        appbuilder.add_view_no_menu(SwaggerView)
