"""Xero Accounting API: vouchers posted as manual journals (`POST /api.xro/2.0/ManualJournals`)."""
