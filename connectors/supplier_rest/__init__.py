"""REST supplier portal connector: client, pure JSON mapping, and a simulator of the portal."""

from connectors.supplier_rest.client import SupplierPortalClient
from connectors.supplier_rest.mapping import to_envelope
from connectors.supplier_rest.simulator import SupplierPortal

__all__ = [
    "ConnectorError",
    "MappingError",
    "SupplierPortal",
    "SupplierPortalClient",
    "to_envelope",
]
