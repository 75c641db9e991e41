"""Printing a benchmark's rows as aligned text or as a markdown table (for the README)."""

from __future__ import annotations


def format_table(rows: list[tuple[str, ...]], markdown: bool, align: list[str] | None = None) -> str:
    """rows[0] is the header. ``align`` gives each column's markdown rule ("---", "---:", ...)."""
    if markdown:
        rule = "|" + "|".join(align or ["---"] * len(rows[0])) + "|"
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, rule)
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(rows: list[tuple[str, ...]], markdown: bool) -> None:
    print(format_table(rows, markdown))
