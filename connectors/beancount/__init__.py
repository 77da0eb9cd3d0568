"""Beancount journal sink: every voucher from `hub.vouchers.v1` as one transaction in a file."""
