"""One type per text column across batches: shared by the store's reads and the latest-version
snapshots (kept below both, so neither imports the other for it)."""

from __future__ import annotations

import pyarrow as pa


def harmonised(tables: list[pa.Table]) -> list[pa.Table]:
    """Batches written by different code paths may type a text column as dictionary, string or
    large_string: where they disagree, all become large_string (values unchanged)."""
    types: dict[str, set] = {}
    for t in tables:
        for f in t.schema:
            types.setdefault(f.name, set()).add(f.type)
    texty = {
        n
        for n, ts in types.items()
        if len(ts) > 1
        and all(
            pa.types.is_dictionary(x)
            or pa.types.is_string(x)
            or pa.types.is_large_string(x)
            or pa.types.is_null(x)
            for x in ts
        )
    }
    if not texty:
        return tables
    out = []
    for t in tables:
        for name in texty & set(t.column_names):
            col = t[name]
            if pa.types.is_dictionary(col.type):
                col = col.cast(col.type.value_type)
            t = t.set_column(t.schema.get_field_index(name), name, col.cast(pa.large_string()))
        out.append(t)
    return out
