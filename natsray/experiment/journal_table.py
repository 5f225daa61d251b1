"""A run's journal as one flat, columnar table (Apache Arrow), and ``evaluations.csv`` written from it.

The finishing step of a run reads the whole journal once: a 100,000-evaluation run has a 43 MB
``evaluations.jsonl``. Parsing it into Python dicts and building a pandas frame from them took
about 4 s of the finishing step; Arrow's multi-threaded JSON reader and CSV writer (``pyarrow``,
the columnar engine pandas itself builds on) do the same in well under a second and hold the
columns compactly, so a journal of millions of lines does not become millions of dicts.

Table layout (:func:`read_table`): one row per complete journal line, in file order; scalar
fields keep their names; the two mappings are flattened (``objectives.valid_accuracy`` becomes the
column ``objective.valid_accuracy``, ``metrics["test_accuracy@200"]`` the column
``metric.test_accuracy@200``); lists (``fitness``, ``parents``) stay list columns; a field missing
from a line is null there.

The fast path needs every line to be a JSON object whose fields keep one type; a journal it cannot
read (a value that is a number in one line and a string in another, a line too long for a block)
is read by the Python reader instead (:func:`natsray.engine.checkpoint.read_journal`), whose errors
name the file and line. Both paths give the same table.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from natsray.engine.checkpoint import read_journal
from natsray.engine.journal_record import MAPPING_PREFIXES
from natsray.experiment.arrow_columns import column

__all__ = [
    "CSV_FIRST",
    "PREFIXES",
    "read_table",
    "row_record",
    "table_from_columns",
    "table_from_lines",
    "table_records",
    "write_csv",
]

PREFIXES = MAPPING_PREFIXES
"""Journal mapping field -> its columns' prefix (``objectives.x`` -> ``objective.x``)."""
_RECORD_FIELDS = frozenset(
    ("candidate_id", "arch", "status", "objectives", "fitness", "metrics")
) | frozenset(("cost_s", "wall_s", "worker", "parents", "seed"))
"""The fields every evaluation record has (a null one is written as null; others are left out)."""
CSV_FIRST = (
    "candidate_id", "id", "arch", "canonical", "nats_index", "status", "fitness", "cost_s", "wall_s",
    "worker", "submit_time", "start_time", "finish_time", "elapsed_s", "sim_submit", "sim_finish",
    "sim_finish_time", "parents", "seed", "attempts", "cached", "cached_from", "error",
)  # fmt: skip
"""Leading columns of ``evaluations.csv`` (those present); then the other scalar fields, then the
``objective.*`` and ``metric.*`` columns."""
_ALWAYS = ("candidate_id", "arch", "canonical", "status")
_BLOCK = 16 << 20  # Arrow parses in blocks; a line longer than one falls back to the Python reader


def _validate(path: Path, records: Sequence[Any]) -> None:
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict) or "arch" not in record or "status" not in record:
            raise ValueError(f"{path}: line {number} is not an evaluation record (needs 'arch' and 'status')")


def _complete_lines(path: Path) -> bytes:
    """The journal's bytes up to its last newline (a torn last line, from a kill mid-write, left out)."""
    if not path.exists():
        return b""
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1]


def _fast(data: bytes) -> pa.Table | None:
    """Arrow's reader over whole lines, or None when it cannot read them (the Python reader decides)."""
    try:
        table = pa_json.read_json(pa.BufferReader(data), read_options=pa_json.ReadOptions(block_size=_BLOCK))
    except pa.ArrowException:  # a type change between blocks, an over-long line, ...
        return None
    names = table.column_names
    if "arch" not in names or "status" not in names:
        return None
    if table.column("arch").null_count or table.column("status").null_count:
        return None  # a line without them: the Python reader names it
    return table


def _column(values: list[Any]) -> pa.Array:
    """One column from Python values; values of mixed types (``1`` and ``"n/a"``) become text."""
    try:
        return column(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array(
            [
                None if v is None else v if isinstance(v, str) else json.dumps(v, allow_nan=True)
                for v in values
            ],
            type=pa.string(),
        )


def _from_records(records: Sequence[Mapping[str, Any]]) -> pa.Table:
    """The flat table of already-parsed records (the Python path)."""
    names: dict[str, None] = {}
    flat_records = []
    for record in records:
        flat: dict[str, Any] = {}
        for key, value in record.items():
            if key in PREFIXES and isinstance(value, Mapping):
                for name, item in value.items():
                    flat[f"{PREFIXES[key]}.{name}"] = item
            else:
                flat[key] = value
        names.update(dict.fromkeys(flat))
        flat_records.append(flat)
    return pa.table({name: _column([flat.get(name) for flat in flat_records]) for name in names})


def _flatten(table: pa.Table) -> pa.Table:
    """Struct columns -> one column per field: ``objectives`` -> ``objective.x`` (others ``a.b``)."""
    while any(pa.types.is_struct(field.type) for field in table.schema):
        table = table.flatten()
    for name in PREFIXES:  # a mapping that is null (or empty) on every line has no columns
        if name in table.column_names and pa.types.is_null(table.schema.field(name).type):
            table = table.drop_columns([name])
    names = []
    for name in table.column_names:
        head, dot, rest = name.partition(".")
        names.append(f"{PREFIXES[head]}.{rest}" if dot and head in PREFIXES else name)
    return table.rename_columns(names)


def read_table(path: str | Path) -> pa.Table:
    """The journal ``path`` as a flat table (layout: module docstring); empty when it has no lines.

    Raises:
        ValueError: one line naming the file and line when a complete line is not valid JSON or
            not an evaluation record (an object with ``arch`` and ``status``).
    """
    path = Path(path)
    data = _complete_lines(path)
    if not data.strip():
        return pa.table({})
    table = _fast(data)
    if table is not None:
        return _flatten(table)
    records = read_journal(path)  # names a corrupt line
    _validate(path, records)
    return _flatten(_from_records(records))


def table_from_lines(data: bytes, source: str | Path) -> pa.Table:
    """Journal lines (complete, newline-terminated) as a flat table, like :func:`read_table`.

    Args:
        data: The lines.
        source: Where they come from, for error messages.

    Raises:
        ValueError: one line naming ``source`` and the line that is not an evaluation record.
    """
    if not data.strip():
        return pa.table({})
    table = _fast(data)
    if table is not None:
        return _flatten(table)
    records = []
    for number, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{source}: line {number} is not valid JSON ({exc.msg})") from None
    _validate(Path(source), records)
    return _flatten(_from_records(records))


def table_from_columns(columns: Mapping[str, Sequence[Any]]) -> pa.Table:
    """The flat table of records given as flat columns
    (:func:`natsray.engine.journal_record.evaluation_columns`): the table their JSON lines give."""
    arrays = {name: _column(list(values)) for name, values in columns.items()}
    table = pa.table(arrays)
    if any(name.partition(".")[0] in PREFIXES for name in arrays) or any(
        pa.types.is_struct(array.type) for array in arrays.values()
    ):  # a mapping among the fields (an extra field's): spread as a JSON reader's table is
        return _flatten(table)
    return table  # flat already (reading its schema back from Arrow costs more than building it)


def table_records(table: pa.Table) -> list[dict[str, Any]]:
    """The journal records of a flat table's rows, fields in column order (the inverse of reading
    lines): ``objective.*`` / ``metric.*`` gathered into ``objectives`` / ``metrics`` (a null member
    left out), a null field left out unless every record has it (``fitness``, ``worker``)."""
    names = table.column_names
    columns = [table.column(name).to_pylist() for name in names]
    plan: list[tuple[str, str | None]] = []
    for name in names:
        head, dot, rest = name.partition(".")
        field = {prefix: key for key, prefix in PREFIXES.items()}.get(head) if dot else None
        plan.append((field, rest) if field is not None else (name, None))
    records = []
    for row in range(table.num_rows):
        record: dict[str, Any] = {}
        for (field, member), values in zip(plan, columns, strict=True):
            value = values[row]
            if member is not None:
                mapping = record.setdefault(field, {})
                if value is not None:
                    mapping[member] = value
            elif value is not None or field in _RECORD_FIELDS:
                record[field] = value
        for field in PREFIXES:
            record.setdefault(field, {})
        records.append(record)
    return records


def row_record(table: pa.Table, index: int) -> dict[str, Any]:
    """Row ``index`` of a flat table as a journal record: null fields left out, ``objective.*`` /
    ``metric.*`` gathered back into ``objectives`` / ``metrics``."""
    record: dict[str, Any] = {}
    for name, values in table.slice(index, 1).to_pydict().items():
        value = values[0]
        if value is None:
            continue
        head, dot, rest = name.partition(".")
        field = {prefix: key for key, prefix in PREFIXES.items()}.get(head) if dot else None
        if field is not None:
            record.setdefault(field, {})[rest] = value
        else:
            record[name] = value
    return record


def _joined(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A list column as text, items joined with ``;`` (an empty list: empty text)."""
    if pa.types.is_list(column.type) and not pa.types.is_string(column.type.value_type):
        if pa.types.is_null(column.type.value_type):
            column = column.cast(pa.list_(pa.string()))
        else:
            column = pc.cast(column, pa.list_(pa.string()))
    return pc.binary_join(column, ";")


@functools.lru_cache(maxsize=1 << 15)
def _canonical_of(text: str) -> str:
    """The canonical cell string of a cell string (cached: the space has 15,625 cells)."""
    from natsray.search_space import Arch

    return Arch.from_str(text).canonical().to_str()


def _canonical(arch: pa.ChunkedArray) -> pa.ChunkedArray:
    """Each cell string's isomorphism-class representative (computed once per distinct cell)."""
    encoded = arch.combine_chunks().dictionary_encode()
    canonical = []
    for text in encoded.dictionary.to_pylist():
        try:
            canonical.append(_canonical_of(text))
        except ValueError as exc:
            line = pc.index(arch, text).as_py() + 1
            raise ValueError(f"line {line}: {exc}") from None
    return pa.chunked_array([pa.array(canonical, type=pa.string()).take(encoded.indices)])


def write_csv(table: pa.Table, path: str | Path) -> None:
    """``evaluations.csv`` of a flat table: one row per journal line (fields: ``docs/results.md``).

    Adds the ``canonical`` column, joins list columns with ``;``, writes nulls as empty cells and
    orders the columns as :data:`CSV_FIRST`, the other scalar fields, then ``objective.*`` and
    ``metric.*``. Text values are quoted; numbers are written in their shortest exact form
    (``80``, ``0.00001``). An empty table writes the header ``candidate_id,arch,canonical,status``.

    Raises:
        ValueError: ``line N: ...`` naming the first line whose ``arch`` is not a NATS cell string.
    """
    path = Path(path)
    if table.num_rows == 0:  # the header of the fields every line has, so readers see the columns
        path.write_text(",".join(f'"{name}"' for name in _ALWAYS) + "\n")
        return
    if "arch" in table.column_names and "canonical" not in table.column_names:
        table = table.append_column("canonical", _canonical(table.column("arch")))
    for i, field in enumerate(table.schema):
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            table = table.set_column(i, field.name, _joined(table.column(i)))
        elif pa.types.is_null(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.string()))
    names = table.column_names
    first = [name for name in CSV_FIRST if name in names]
    nested = [name for name in names if name.startswith(tuple(f"{p}." for p in PREFIXES.values()))]
    rest = [name for name in names if name not in first and name not in nested]
    pa_csv.write_csv(table.select(first + rest + nested), path)
