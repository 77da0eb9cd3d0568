"""The supplier portal's JSON ↔ canonical messages. Pure functions, no I/O.

Money travels as JSON strings ("12.50") or numbers parsed as Decimal (the client reads bodies
with `parse_float=Decimal`); a binary float is refused, never rounded silently.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from pydantic import ValidationError

from connectors.errors import MalformedPayload
from schemas.base import CanonicalMessage
from schemas.envelope import Envelope, content_id, message_id
from schemas.purchasing import (
    AcknowledgedLine,
    AckStatus,
    InvoiceLine,
    LineAckStatus,
    PurchaseOrderAcknowledged,
    PurchaseOrderCancelled,
    PurchaseOrderChanged,
    PurchaseOrderIssued,
    ShipmentNotified,
    ShippedLine,
    SupplierInvoiceReceived,
    SupplierStockReported,
    reported_units,
)

M = TypeVar("M", bound=CanonicalMessage)


def MappingError(path: str, reason: str) -> MalformedPayload:
    """The connectors' typed error for a payload the hub cannot use, naming the field."""
    return MalformedPayload(f"{path}: {reason}")


# --- out -------------------------------------------------------------------------------------


def purchase_order_to_json(po: PurchaseOrderIssued | PurchaseOrderChanged) -> dict[str, Any]:
    """The order as the portal takes it: POST for a new one, PUT (whole order) for a change."""
    extra: dict[str, Any] = (
        {"note": po.note}
        if isinstance(po, PurchaseOrderIssued)
        else {"revision": po.revision, "changed_at": po.changed_at.isoformat(), "reason": po.reason}
    )
    return {
        "po_number": po.po_number,
        "issued_at": po.issued_at.isoformat(),
        "currency": po.currency,
        "ship_to": po.ship_to,
        "requested_delivery": po.expected_delivery.isoformat(),
        **extra,
        "lines": [
            {
                "line": line.line_number,
                "sku": line.sku,
                "supplier_sku": line.supplier_sku,
                "quantity": line.quantity,
                "unit": line.unit_of_measure,
                "unit_price": str(line.unit_price),
            }
            for line in po.lines
        ],
    }


def cancellation_to_json(message: PurchaseOrderCancelled) -> dict[str, Any]:
    return {"cancelled_at": message.cancelled_at.isoformat(), "reason": message.reason}


# --- in --------------------------------------------------------------------------------------


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MappingError(path, "expected an object")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise MappingError(path, "expected a list")
    return value


def _req(d: dict[str, Any], key: str, path: str) -> Any:
    if d.get(key) in (None, ""):
        raise MappingError(f"{path}.{key}", "missing")
    return d[key]


def _money(value: Any, path: str) -> Decimal:
    if isinstance(value, float):
        raise MappingError(path, "a binary float; send amounts as strings or exact decimals")
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise MappingError(path, f"{value!r} is not an amount")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise MappingError(path, f"{value!r} is not an amount") from None
    if not result.is_finite():
        raise MappingError(path, f"{value!r} is not an amount")
    return result


def _units(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MappingError(path, f"{value!r} is not a whole number of units")
    return value


def _when(value: Any, path: str) -> datetime:
    try:
        result = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise MappingError(path, f"{value!r} is not an ISO 8601 time") from None
    if result.tzinfo is None:
        raise MappingError(path, "time without a timezone")
    return result


def _day(value: Any, path: str) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise MappingError(path, f"{value!r} is not an ISO 8601 date") from None


def _build(cls: type[M], path: str, **data: Any) -> M:
    try:
        return cls(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise MappingError(f"{path}.{loc}" if loc else path, err["msg"]) from None


_ACK = {
    "accepted": AckStatus.ACCEPTED,
    "partially_accepted": AckStatus.ACCEPTED_WITH_CHANGES,
    "changed": AckStatus.ACCEPTED_WITH_CHANGES,
    "rejected": AckStatus.REJECTED,
}


def acknowledgement_from_json(payload: Any, *, supplier: str) -> PurchaseOrderAcknowledged:
    p = _obj(payload, "acknowledgement")
    status = _ACK.get(_req(p, "status", "acknowledgement"))
    if status is None:
        raise MappingError("acknowledgement.status", f"unknown status {p['status']!r}")
    lines = []
    for i, raw in enumerate(_list(p.get("lines", []), "acknowledgement.lines")):
        path = f"acknowledgement.lines[{i}]"
        line = _obj(raw, path)
        try:
            line_status = LineAckStatus(_req(line, "status", path))
        except ValueError:
            raise MappingError(f"{path}.status", f"unknown status {line['status']!r}") from None
        price = line.get("unit_price")
        lines.append(
            _build(
                AcknowledgedLine,
                path,
                line_number=_units(_req(line, "line", path), f"{path}.line"),
                sku=_req(line, "sku", path),
                status=line_status,
                quantity=_units(line.get("quantity_confirmed", 0), f"{path}.quantity_confirmed"),
                unit_price=None if price is None else _money(price, f"{path}.unit_price"),
                expected_delivery=_day(line.get("promised_date"), f"{path}.promised_date"),
            )
        )
    return _build(
        PurchaseOrderAcknowledged,
        "acknowledgement",
        po_number=_req(p, "po_number", "acknowledgement"),
        supplier=supplier,
        acknowledgement_id=_req(p, "id", "acknowledgement"),
        acknowledged_at=_when(_req(p, "acknowledged_at", "acknowledgement"), "acknowledged_at"),
        status=status,
        lines=tuple(lines),
    )


def shipment_from_json(payload: Any, *, supplier: str) -> ShipmentNotified:
    p = _obj(payload, "shipment")
    lines = []
    for i, raw in enumerate(_list(_req(p, "lines", "shipment"), "shipment.lines")):
        path = f"shipment.lines[{i}]"
        line = _obj(raw, path)
        number = line.get("line")
        lines.append(
            _build(
                ShippedLine,
                path,
                line_number=None if number is None else _units(number, f"{path}.line"),
                sku=_req(line, "sku", path),
                quantity=_units(_req(line, "quantity", path), f"{path}.quantity"),
            )
        )
    return _build(
        ShipmentNotified,
        "shipment",
        po_number=_req(p, "po_number", "shipment"),
        supplier=supplier,
        shipment_id=_req(p, "id", "shipment"),
        shipped_at=_when(_req(p, "shipped_at", "shipment"), "shipment.shipped_at"),
        expected_delivery=_day(p.get("estimated_delivery"), "shipment.estimated_delivery"),
        carrier=p.get("carrier") or "",
        tracking_number=p.get("tracking_number") or "",
        lines=tuple(lines),
    )


def invoice_from_json(payload: Any, *, supplier: str) -> SupplierInvoiceReceived:
    p = _obj(payload, "invoice")
    lines = []
    for i, raw in enumerate(_list(_req(p, "lines", "invoice"), "invoice.lines")):
        path = f"invoice.lines[{i}]"
        line = _obj(raw, path)
        number = line.get("line")
        lines.append(
            _build(
                InvoiceLine,
                path,
                line_number=None if number is None else _units(number, f"{path}.line"),
                sku=_req(line, "sku", path),
                quantity=_units(_req(line, "quantity", path), f"{path}.quantity"),
                unit_price=_money(_req(line, "unit_price", path), f"{path}.unit_price"),
            )
        )
    return _build(
        SupplierInvoiceReceived,
        "invoice",
        po_number=_req(p, "po_number", "invoice"),
        supplier=supplier,
        invoice_number=_req(p, "number", "invoice"),
        invoiced_at=_when(_req(p, "issued_at", "invoice"), "invoice.issued_at"),
        currency=_req(p, "currency", "invoice"),
        lines=tuple(lines),
        subtotal=_money(_req(p, "subtotal", "invoice"), "invoice.subtotal"),
        tax=_money(p.get("tax", "0"), "invoice.tax"),
        charges=_money(p.get("charges", "0"), "invoice.charges"),
        total=_money(_req(p, "total", "invoice"), "invoice.total"),
    )


def stock_from_json(
    payload: Any, *, supplier: str, report_id: str | None = None
) -> SupplierStockReported:
    p = _obj(payload, "stock")
    available = _units(_req(p, "available", "stock"), "stock.available")
    updated = _req(p, "updated_at", "stock")
    return _build(
        SupplierStockReported,
        "stock",
        supplier=supplier,
        sku=_req(p, "sku", "stock"),
        supplier_sku=p.get("supplier_sku"),
        quantity=reported_units(available),
        reported_at=_when(updated, "stock.updated_at"),
        report_id=report_id or f"stock-{updated}",
    )


def to_envelope(message: CanonicalMessage, *, supplier: str) -> Envelope:
    """Ids from content: the same document fetched twice (a resync, an overlapping `since`) is
    the same message, which the core then ignores."""
    source = f"rest/{supplier}"
    digest = content_id(message.model_dump_json())
    return Envelope(id=message_id(source, message.ce_type, digest), source=source, data=message)
