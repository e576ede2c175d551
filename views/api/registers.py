"""The registers through the API: cards (with the batch registration of the stock), people,
pickup points, units, and the Kobe register import."""

import copy

from flask import request
from flask_appbuilder.api import expose, protect, safe
from flask_appbuilder.security.decorators import permission_name
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, missing, validate
from sqlalchemy.orm import selectinload

from app import access
from app.validation import FieldError
from models import ORG_TYPES, Person, PickupPoint, ReserveCard, Unit
from views.api import schemas as s
from views.api.base import RegisterApi, StepApi, answers, api_step, json_body, workflow
from views.listing import ListInterface

READ_ONLY = {"get", "get_list"}
READ_WRITE = READ_ONLY | {"post", "put"}


class RegisterWriteApi(RegisterApi):
    """A register written with a plain schema (400 for a malformed field) through its workflow
    step (app.workflow.registers), which checks references and unique values and audits."""

    include_route_methods = READ_WRITE
    save_step = ""

    def __init__(self):
        super().__init__()
        # The body schemas, described in the OpenAPI document as "<ClassName>.write" (POST) and
        # "<ClassName>.update" (PUT: only the fields given change, so none is required).
        name = type(self).__name__
        described = type(f"{name}Write", (self.write_schema,),
                         {"__component_name__": f"{name}.write"})
        self.openapi_spec_component_schemas = (*self.openapi_spec_component_schemas, described,
                                               partial_schema(self.write_schema,
                                                              f"{name}.update"))

    @expose("/", methods=["POST"])
    @protect()
    @safe
    @permission_name("post")
    @api_step
    def post(self):
        """Add an item
        ---
        post:
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/{{self.__class__.__name__}}.write'
          responses:
            201:
              description: Added
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      id: {type: integer}
                      result:
                        $ref: '#/components/schemas/{{self.__class__.__name__}}.write'
        """
        schema = self.write_schema()
        item = self.save(json_body(schema), None)
        return self.response(201, id=item.id, result=access.masked_dump(item, schema.dump(item)))

    @expose("/<int:pk>", methods=["PUT"])
    @protect()
    @safe
    @permission_name("put")
    @api_step
    def put(self, pk):
        """Change an item (only the fields given)
        ---
        put:
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/{{self.__class__.__name__}}.update'
          responses:
            200:
              description: Changed
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      result:
                        $ref: '#/components/schemas/{{self.__class__.__name__}}.write'
        """
        schema = self.write_schema()
        item = self.save(json_body(schema, partial=True), pk)
        return self.response(200, result=access.masked_dump(item, schema.dump(item)))

    def save(self, data: dict, pk):
        """The workflow step that checks, saves and audits the register's item."""
        return getattr(workflow("registers"), self.save_step)(data, pk)


def partial_schema(schema: type[Schema], component_name: str) -> type[Schema]:
    """`schema` with no field required and no defaults: the body of a partial change."""
    declared = {}
    for key, field in schema._declared_fields.items():
        copied = copy.copy(field)
        copied.required = False
        copied.load_default = missing
        declared[key] = copied
    return type(component_name.replace(".", ""), (Schema,),
                {**declared, "__component_name__": component_name})


class PersonWriteSchema(Schema):
    hsa_id = s.HsaId(required=True)
    personal_number = s.PersonalNumber(allow_none=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.Email(allow_none=True)
    unit_id = s.Id(allow_none=True)
    protected_identity = s.StrictBool(load_default=False)


class PickupPointWriteSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    address = fields.String(allow_none=True, validate=validate.Length(max=400))
    min_stock = fields.Integer(strict=True, validate=validate.Range(min=0, max=100000),
                               load_default=5)
    active = s.StrictBool(load_default=True)


class UnitWriteSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    hsa_id = s.HsaId(allow_none=True)
    org_type_code = fields.String(required=True, validate=validate.OneOf(ORG_TYPES))
    parent_id = s.Id(allow_none=True)
    manager_hsa_ids = fields.List(
        s.HsaId(), validate=validate.Length(max=50),
        metadata={"description": "HSA-ids of the unit's managers (people with a Chef login); "
                                 "a PUT replaces the list"})


class PersonApi(RegisterWriteApi):
    resource_name = "people"
    class_permission_name = "PersonApi"
    openapi_spec_tag = "People"
    datamodel = ListInterface(Person)
    save_step = "save_person"
    write_schema = PersonWriteSchema
    list_columns = ["id", "hsa_id", "personal_number", "name", "email", "unit_id",
                    "unit.name", "protected_identity"]
    show_columns = list_columns
    search_columns = ["hsa_id", "name", "personal_number", "protected_identity"]
    order_columns = ["id", "hsa_id", "name"]
    base_order = ("name", "asc")
    cursor_paging = True


class PickupPointApi(RegisterWriteApi):
    resource_name = "pickup-points"
    class_permission_name = "PickupPointApi"
    openapi_spec_tag = "Pickup points"
    datamodel = ListInterface(PickupPoint)
    save_step = "save_pickup_point"
    write_schema = PickupPointWriteSchema
    list_columns = ["id", "name", "address", "min_stock", "active"]
    show_columns = list_columns
    search_columns = ["name", "active"]
    order_columns = ["id", "name"]


class UnitApi(RegisterWriteApi):
    resource_name = "units"
    class_permission_name = "UnitApi"
    openapi_spec_tag = "Units"
    datamodel = ListInterface(Unit, selectinload(Unit.managers))
    save_step = "save_unit"
    write_schema = UnitWriteSchema
    list_columns = ["id", "name", "hsa_id", "org_type_code", "parent_id", "manager_hsa_ids"]
    show_columns = list_columns
    search_columns = ["name", "hsa_id", "org_type_code"]
    order_columns = ["id", "name"]


class CardApi(RegisterApi):
    resource_name = "cards"
    class_permission_name = "CardApi"
    openapi_spec_tag = "Cards"
    datamodel = ListInterface(ReserveCard)
    include_route_methods = READ_ONLY | {"batch"}
    list_columns = ["id", "serial", "product_code", "loa", "expires_on", "status",
                    "pickup_point_id", "pickup_point.name"]
    show_columns = list_columns
    search_columns = ["serial", "product_code", "loa", "expires_on", "status"]
    order_columns = ["id", "serial", "expires_on", "status"]
    base_order = ("expires_on", "asc")

    @answers(404)
    @expose("/batch", methods=["POST"])
    @protect()
    @safe
    @permission_name("batch")
    @api_step
    def batch(self):
        """Register a batch of sealed envelopes: all or none.
        ---
        post:
          summary: Register sealed envelopes in the stock
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/CardBatchSchema'
          responses:
            201:
              description: Every serial registered
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/CardBatchResultSchema'
        """
        data = json_body(s.CardBatchSchema())
        created = workflow("stock").register_batch(
            data["serials"], data["product_code"], data["loa"], data["expires_on"],
            data["pickup_point_id"])
        return self.response(201, created=created)


class KobeApi(StepApi):
    resource_name = "kobe"
    class_permission_name = "KobeApi"
    openapi_spec_tag = "Kobe register"

    @expose("/register", methods=["PUT"])
    @protect()
    @safe
    @permission_name("put")
    @api_step
    def register(self):
        """Import rows of the Kobe register: all or nothing.
        ---
        put:
          summary: Import the Kobe register (JSON rows or CSV)
          description: >-
            A JSON array of rows (or an object with `rows`), or CSV (`text/csv`) with the
            header `hsa_id,ordinary_card,reserve_card_order`. Nothing is saved when a row is
            wrong; the answer then lists every wrong row (400, `errors.rows`).
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  oneOf:
                  - type: array
                    items:
                      $ref: '#/components/schemas/KobeRowSchema'
                  - $ref: '#/components/schemas/KobeImportSchema'
              text/csv:
                schema:
                  type: string
          responses:
            200:
              description: Every row saved
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/UpdatedSchema'
            400:
              description: >-
                Rows that are wrong, each listed in `errors.rows` (nothing saved), or a
                malformed body (the wrong fields in `errors`)
              content:
                application/json:
                  schema:
                    anyOf:
                    - $ref: '#/components/schemas/KobeImportErrorSchema'
                    - $ref: '#/components/schemas/Error'
        """
        result = workflow("kobe").import_rows(_kobe_rows())
        return self.response(200, updated=int(result["updated"]))


def _kobe_rows() -> list:
    if request.mimetype in ("text/csv", "text/plain"):
        return workflow("kobe").parse_csv(request.get_data(as_text=True))
    body = request.get_json(silent=True)
    if isinstance(body, dict):
        body = s.KobeImportSchema().load(body)["rows"]
    if not isinstance(body, list) or not all(isinstance(row, dict) for row in body):
        raise FieldError("_body", _l("Send a JSON array of rows (objects) or CSV."))
    return [{key: row.get(key) for key in KOBE_COLUMNS} for row in body]


KOBE_COLUMNS = ("hsa_id", "ordinary_card", "reserve_card_order")
