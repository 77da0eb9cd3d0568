"""Finance linkage: chart of accounts, moving-average costing, voucher rules and the ledger.

The rules are pure; the core calls them inside its transaction, posts the voucher with
`ledger.post` and writes it to the outbox for `hub.vouchers.v1`.
"""
