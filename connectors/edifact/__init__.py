"""UN/EDIFACT D.96A supplier connector: ORDERS out; ORDRSP, DESADV, INVOIC in; CONTRL back."""

from connectors.edi_common.errors import EdiError
from connectors.edifact.codec import EdifactCodec, EdifactPartner
from connectors.edifact.exchange import edifact_exchange
from connectors.edifact.syntax import Party

__all__ = ["EdiError", "EdifactCodec", "EdifactPartner", "Party", "edifact_exchange"]
