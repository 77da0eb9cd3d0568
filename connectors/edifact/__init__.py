"""UN/EDIFACT D.96A supplier connector: ORDERS, ORDCHG out; ORDRSP, DESADV, INVOIC in; CONTRL."""

from connectors.edi_common.errors import EdiError
from connectors.edifact.codec import EdifactCodec, EdifactPartner
from connectors.edifact.exchange import edifact_exchange, edifact_exchange_for
from connectors.edifact.syntax import Party

__all__ = [
    "EdiError",
    "EdifactCodec",
    "EdifactPartner",
    "Party",
    "edifact_exchange",
    "edifact_exchange_for",
]
