"""The data model, one module per aggregate. Importing this package registers every table."""

from flask_appbuilder import Model

from models.audit import AuditCheckpoint, AuditEvent, AuditHead
from models.cards import CARD_STATUSES, LOA_LEVELS, PickupPoint, ReserveCard
from models.deviations import (
    AUTOMATIC_DEVIATIONS,
    DEVIATION_STATUSES,
    DEVIATION_TYPES,
    Deviation,
    DeviationNote,
)
from models.issuances import (
    CHANNELS,
    CLOSED_FOR_CARD,
    CLOSED_FOR_PERSON,
    ENDED,
    ISSUANCE_STATUSES,
    REASONS,
    Extension,
    Issuance,
    IssuanceAttester,
)
from models.jobs import EXPORT_STATUSES, ExportJob, SweepRun
from models.kobe import ORDINARY_CARD_STATES, KobeRecord
from models.outbox import OUTBOX_STATUSES, OutboxMessage
from models.people import AccountLink, Person, ProtectedGeneration, RetiredLogin, unit_managers
from models.receipts import Receipt
from models.signin import SessionGeneration, SigninFailure, SigninLock
from models.units import ORG_TYPES, OrganisationType, Unit

__all__ = [
    "Model",
    "AUTOMATIC_DEVIATIONS",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditHead",
    "CARD_STATUSES",
    "LOA_LEVELS",
    "PickupPoint",
    "ReserveCard",
    "DEVIATION_STATUSES",
    "DEVIATION_TYPES",
    "Deviation",
    "DeviationNote",
    "CHANNELS",
    "CLOSED_FOR_CARD",
    "CLOSED_FOR_PERSON",
    "ENDED",
    "ISSUANCE_STATUSES",
    "REASONS",
    "Extension",
    "Issuance",
    "IssuanceAttester",
    "SweepRun",
    "EXPORT_STATUSES",
    "ExportJob",
    "ORDINARY_CARD_STATES",
    "KobeRecord",
    "OUTBOX_STATUSES",
    "OutboxMessage",
    "AccountLink",
    "ProtectedGeneration",
    "RetiredLogin",
    "Person",
    "unit_managers",
    "Receipt",
    "SessionGeneration",
    "SigninFailure",
    "SigninLock",
    "ORG_TYPES",
    "OrganisationType",
    "Unit",
]
