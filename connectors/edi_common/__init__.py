"""What X12 and EDIFACT share: typed errors, control numbers, the exchange-directory poller."""

from connectors.edi_common.control import ControlNumbers
from connectors.edi_common.errors import EdiError
from connectors.edi_common.exchange import Codec, Exchange, Parsed, PollResult

__all__ = ["Codec", "ControlNumbers", "EdiError", "Exchange", "Parsed", "PollResult"]
