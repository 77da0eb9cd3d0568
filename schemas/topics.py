"""Topic names. Versioned nouns; the public names in INTERFACE.md."""

ORDERS = "hub.orders.v1"
PAYMENTS = "hub.payments.v1"
STOCK_EVENTS = "hub.stock-events.v1"
PURCHASING = "hub.purchasing.v1"
RESERVATIONS = "hub.reservations.v1"
STOCK_LEVELS = "hub.stock-levels.v1"
VOUCHERS = "hub.vouchers.v1"
PURCHASE_ORDERS = "hub.purchase-orders.v1"
DLQ = "hub.dlq.v1"

INBOUND = (ORDERS, PAYMENTS, STOCK_EVENTS, PURCHASING)
OUTBOUND = (RESERVATIONS, STOCK_LEVELS, VOUCHERS, PURCHASE_ORDERS)
ALL = (*INBOUND, *OUTBOUND, DLQ)
