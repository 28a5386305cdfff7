"""A store's order history as a CSV file (header ``customer_id,date,amount``; ISO dates), read with clear errors."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import date
from decimal import Decimal, InvalidOperation

HEADER = ("customer_id", "date", "amount")
Histories = dict[str, list[tuple[date, Decimal]]]


class TransactionsFileError(ValueError):
    """The file is not what the command reads; the message names the line and the column."""


def read_transactions(lines: Iterable[str]) -> Histories:
    """Each customer's ``(date, amount)`` transactions; a date may carry a time (``1997-01-01T10:00:00``)."""
    rows = csv.reader(lines)
    header = tuple(cell.strip() for cell in next(rows, ()))
    if header != HEADER:
        raise TransactionsFileError(f"line 1: the header must be {','.join(HEADER)}, not {','.join(header)!r}")
    histories: Histories = {}
    for row in rows:
        line = rows.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(HEADER):
            raise TransactionsFileError(f"line {line}: {len(row)} columns, expected 3 ({','.join(HEADER)})")
        customer, day, amount = (cell.strip() for cell in row)
        if not customer:
            raise TransactionsFileError(f"line {line}, column customer_id: empty")
        try:
            when = date.fromisoformat(day[:10]) if len(day) >= 10 else date.fromisoformat(day)
        except ValueError:
            raise TransactionsFileError(f"line {line}, column date: {day!r} is not an ISO date (YYYY-MM-DD)") from None
        try:
            value = Decimal(amount)
        except InvalidOperation:
            raise TransactionsFileError(f"line {line}, column amount: {amount!r} is not a number") from None
        if not value.is_finite() or value < 0:
            raise TransactionsFileError(f"line {line}, column amount: {amount!r} must be a non-negative number")
        histories.setdefault(customer, []).append((when, value))
    if not histories:
        raise TransactionsFileError("no transactions after the header")
    return histories
