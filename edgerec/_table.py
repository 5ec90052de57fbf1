"""One table printer for the terminal: rich when installed, aligned plain text otherwise (a board's runtime-only
install has no rich, and its verbs print the same tables)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["fmt", "print_table", "shorten"]

_TEXT_COLUMNS = {"basis", "measured", "stage", "Status"}


def shorten(text: str, n: int) -> str:
    """``text`` on one line, cut to ``n`` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def fmt(v: Any) -> str:
    """A cell: "-" for None, floats to a precision that suits their size."""
    if v is None:
        return "-"
    if isinstance(v, float):
        # three significant-ish digits: sub-millisecond latencies need decimals, seconds do not
        return f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]], *, file=None,
                text_columns: int = 3) -> None:
    """``title`` above a table of ``rows``; the first ``text_columns`` columns are left-aligned text."""
    rows = [[fmt(c) for c in r] for r in rows]
    file = file or sys.stdout
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
        print(title, file=file)

        def line(cells):
            return "  ".join(c.ljust(w) if i < text_columns or headers[i] in _TEXT_COLUMNS else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        print(line(list(headers)), file=file)
        for r in rows:
            print(line(r), file=file)
        return
    table = Table(header_style="bold")
    for i, h in enumerate(headers):
        text_col = i < text_columns or h in _TEXT_COLUMNS
        table.add_column(h, justify="left" if text_col else "right", no_wrap=i < min(text_columns, 3))
    for r in rows:
        table.add_row(*map(escape, r))  # text, not markup: "[" in an error message stays
    console = Console(file=file)
    if not console.is_terminal:
        console = Console(file=file, width=180)  # piped or logged: do not squeeze to 80 columns
    console.print(title, style="bold", highlight=False)  # above, not inside: a narrow table would wrap it
    console.print(table)
