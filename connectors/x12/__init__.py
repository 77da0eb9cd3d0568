"""ANSI X12 004010 supplier connector: 850, 860 out; 855, 856, 810, 846 in; 997 both ways."""

from connectors.edi_common.errors import EdiError
from connectors.x12.codec import X12Codec, X12Partner
from connectors.x12.exchange import x12_exchange, x12_exchange_for
from connectors.x12.syntax import Party

__all__ = ["EdiError", "Party", "X12Codec", "X12Partner", "x12_exchange", "x12_exchange_for"]
