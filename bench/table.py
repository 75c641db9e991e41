"""Printing a benchmark's rows as aligned text or as a markdown table (for the README)."""

from __future__ import annotations


def print_table(rows: list[tuple[str, ...]], markdown: bool) -> None:
    """rows[0] is the header."""
    if markdown:
        print("| " + " | ".join(rows[0]) + " |")
        print("|" + "---|" * len(rows[0]))
        for row in rows[1:]:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
