"""The result store: JSON lines, one measurement per line, validated against a JSON Schema.

Appending never rewrites earlier lines, so stores from several boards can be concatenated or passed
side by side to ``edgerec bench compare``. A line that is not valid JSON or does not match the schema
is skipped with a warning naming the file and line; the rest of the file is still read.

>>> append_records("bench.jsonl", [record])      # doctest: +SKIP
>>> records = read_records("bench.jsonl")        # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["DEFAULT_STORE", "RECORD_FORMAT", "StoreWarning", "append_records", "read_records", "schema", "validate_record"]

RECORD_FORMAT = "edgerec-bench/1"
DEFAULT_STORE = "edgerec-bench.jsonl"
_SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "bench-result.schema.json"
_SCHEMA: dict | None = None


class StoreWarning(UserWarning):
    """A line of a result store that was skipped."""


def schema() -> dict[str, Any]:
    """The JSON Schema of one record (``edgerec/schemas/bench-result.schema.json``)."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = json.loads(_SCHEMA_PATH.read_text())
    return _SCHEMA


def _errors(record: Any) -> list[str]:
    import jsonschema

    v = jsonschema.Draft202012Validator(schema())
    return [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in v.iter_errors(record)]


def validate_record(record: dict[str, Any]) -> None:
    """Raise ``ConfigError`` naming the first field that does not match the schema."""
    errs = _errors(record)
    if errs:
        raise ConfigError(f"bench record does not match {RECORD_FORMAT}: {errs[0]}")


def append_records(path: str | Path, records: Iterable[dict[str, Any]]) -> Path:
    """Validate and append ``records`` to the store at ``path`` (created with its folder if missing)."""
    path = Path(path)
    lines = []
    for r in records:
        validate_record(r)
        lines.append(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    # one write per call, O_APPEND: concurrent writers interleave whole batches, not characters
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(lines))
        f.flush()
        os.fsync(f.fileno())
    return path


def read_records(*paths: str | Path, kind: str | None = None) -> list[dict[str, Any]]:
    """Every valid record in ``paths``, in order; corrupt lines are skipped with a :class:`StoreWarning`.

    Each record gains ``_store`` (the file it came from) and ``_line`` (its line number).
    """
    out = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"result store not found: {path}", hint="run `edgerec bench BUNDLE --store FILE` first")
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    warnings.warn(f"{path}:{n}: skipped, not valid JSON ({exc.msg})", StoreWarning, stacklevel=2)
                    continue
                errs = _errors(rec)
                if errs:
                    warnings.warn(f"{path}:{n}: skipped, not a {RECORD_FORMAT} record ({errs[0]})", StoreWarning, stacklevel=2)
                    continue
                if kind and rec.get("kind") != kind:
                    continue
                rec["_store"], rec["_line"] = str(path), n
                out.append(rec)
    return out
