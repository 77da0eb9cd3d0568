"""the journal's receipts are indexed by receipt line

A receipt line (receipt id, SKU, location, PO) is taken once: purchasing already kept it so,
while the stock book added a receipt sent again under another message id a second time. The
core now looks its batch's receipt lines up in the journal (the PO in a receipt's `reason`), on
this partial index of the journal's receipts. On PostgreSQL it is built concurrently: the
journal is the largest table, and a plain build would hold up every core commit; an invalid
index a failed build left behind is built again.

Receipts journaled before take their PO from purchasing's record of them (`po_receipts`),
where one PO alone took the line and the journal holds it once. The others keep "", which the
core takes for any PO: a copy sent again after the upgrade is known either way, and a line of
another PO counts on its own where the PO was filled in. (Receipts journaled from now on keep
their PO, or "-" for none.)

Revision ID: 0018_movements_receipt_index
Revises: 0017_dead_letter_time
Create Date: 2026-12-07 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_movements_receipt_index"
down_revision = "0017_dead_letter_time"
branch_labels = None
depends_on = None


# A receipt line's PO, where one PO alone took it and the journal holds the line once
# (purchasing keeps no row of a PO it does not know). One pass over each table, grouped: a
# lookup per receipt would read every movement of its stock, sales too.
_ONE_PO = (
    "SELECT p.receipt_id, p.sku, p.location, min(p.po_number) AS po FROM po_receipts AS p"
    " JOIN (SELECT ref, sku, location FROM movements WHERE kind = 'receipt'"
    " GROUP BY ref, sku, location HAVING count(*) = 1) AS once"
    " ON once.ref = p.receipt_id AND once.sku = p.sku AND once.location = p.location"
    " GROUP BY p.receipt_id, p.sku, p.location HAVING count(*) = 1"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            f"UPDATE movements AS m SET reason = one.po FROM ({_ONE_PO}) AS one"
            " WHERE m.kind = 'receipt' AND m.reason = '' AND m.ref = one.receipt_id"
            " AND m.sku = one.sku AND m.location = one.location"
        )
        with op.get_context().autocommit_block():
            invalid = bind.execute(
                sa.text(
                    "SELECT 1 FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid"
                    " WHERE c.relname = 'ix_movements_receipt' AND NOT i.indisvalid"
                )
            ).first()
            if invalid is not None:  # left by a build that failed or was cancelled
                op.execute("DROP INDEX CONCURRENTLY ix_movements_receipt")
            op.execute(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_movements_receipt"
                " ON movements (ref, sku, location) WHERE kind = 'receipt'"
            )
        return
    op.execute(
        f"UPDATE movements SET reason = (SELECT one.po FROM ({_ONE_PO}) AS one"
        " WHERE one.receipt_id = movements.ref AND one.sku = movements.sku"
        " AND one.location = movements.location)"
        f" WHERE kind = 'receipt' AND reason = '' AND EXISTS (SELECT 1 FROM ({_ONE_PO}) AS one"
        " WHERE one.receipt_id = movements.ref AND one.sku = movements.sku"
        " AND one.location = movements.location)"
    )
    op.create_index(
        "ix_movements_receipt",
        "movements",
        ["ref", "sku", "location"],
        sqlite_where=sa.text("kind = 'receipt'"),
    )


def downgrade() -> None:
    # In the downgrade's transaction: an earlier migration refusing to go down takes it back.
    op.drop_index("ix_movements_receipt", table_name="movements")
