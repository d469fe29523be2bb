"""Feed layouts as providers write them, and their mapping onto canonical staged columns.

The layouts are versioned data (``config/layouts/``: a version file per set, ``history.yaml``
with effective dates and pinned hashes, like the catalogue). Headers are matched tolerantly:
NFKC, spaces, punctuation and ASCII case are ignored, and a code header's number (``_1``..``_6``,
which differ between the 2016 and 2021 standards) is ignored when its description matches.
Exchange-table field codes (``CF_WSH``, ``XK_XDR_SHXYM``...) match like headers.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from scoring.common.config import CONFIG_DIR, ConfigError, content_hash, load_with_lines

LAYOUTS_DIR = CONFIG_DIR / "layouts"
LAYOUT_HISTORY = LAYOUTS_DIR / "history.yaml"
# The feeds a layout may name: those of the catalogue (and its providers' deliveries).
FEEDS = (
    "register",
    "penalty",
    "licence",
    "inspection",
    "dishonest_debtor",
    "credit_record",
    "credit_change",
    "commitment_result",
    "tax_credit_rating",
)
_LAYOUT_KEYS = {
    "id",
    "feed",
    "title",
    "columns",
    "required",
    "signature",
    "combine",
    "values",
    "units",
    "note",
}
_COLUMN_KEYS = {"headers", "codes"}
UNITS = {"元": 1.0, "万元": 10_000.0}
HEADER_SEARCH_ROWS = 10  # title rows above the header: how far down the header is looked for


@dataclass(frozen=True)
class Layout:
    id: str
    feed: str
    title: str
    columns: dict[str, tuple[str, ...]]  # canonical name -> accepted headers (first: standard)
    required: tuple[str, ...]  # canonical columns without which the file is unusable
    signature: tuple[str, ...]  # canonical columns whose presence identifies the layout
    codes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # exchange field codes
    combine: dict[str, tuple[str, ...]] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)

    def standard_headers(self) -> list[str]:
        return [aliases[0] for aliases in self.columns.values()]

    def names(self, canon: str) -> tuple[str, ...]:
        return self.columns.get(canon, ()) + self.codes.get(canon, ())

    def with_headers(self, extra: dict[str, str]) -> Layout:
        """This layout with a provider's own headers (header -> canonical column) as aliases."""
        cols = {c: a for c, a in self.columns.items()}
        for header, canon in extra.items():
            cols[canon] = cols[canon] + (header,)
        return replace(self, columns=cols)


def header_key(h: object) -> str:
    """A header as matched: NFKC, no BOM, spaces or punctuation, ASCII upper-case."""
    s = unicodedata.normalize("NFKC", str(h))
    s = "".join(ch for ch in s if not unicodedata.category(ch).startswith(("P", "Z", "C", "S")))
    return s.upper()


def loose_key(key: str) -> str:
    """A header key without the number of a code header (行政相对人代码_2 in 2016 is 组织机构代码,
    in 2021 工商注册号): used only where the description after it says which code it is."""
    return re.sub(r"(?<=代码)\d+", "", key)


def normalise_header(h: object) -> str:
    s = unicodedata.normalize("NFKC", str(h)).replace("\ufeff", "")
    return re.sub(r"\s+", "", s)


@dataclass(frozen=True)
class LayoutSet:
    layouts: tuple[Layout, ...]
    sha256: str
    source: str = ""
    doc: dict = field(default_factory=dict, repr=False, compare=False)  # what the hash is of

    def by_id(self, layout_id: str) -> Layout:
        return next(lay for lay in self.layouts if lay.id == layout_id)

    def ids(self) -> list[str]:
        return [lay.id for lay in self.layouts]

    @classmethod
    def load(cls, path: Path | str) -> LayoutSet:
        doc, pos = load_with_lines(path)
        layouts = _parse_layouts(doc, pos, str(path))
        return cls(layouts=layouts, sha256=content_hash(doc), source=str(path), doc=doc)

    @classmethod
    def in_force(cls, as_of, history: Path | str = LAYOUT_HISTORY) -> LayoutSet:
        """The layout version in force on a date (latest effective_from <= as_of; the first one
        before any), checked against the hash its history entry approved."""
        return _in_force(str(as_of)[:10], str(history))

    @classmethod
    def latest(cls, history: Path | str = LAYOUT_HISTORY) -> LayoutSet:
        return cls.in_force("2262-01-01", history)


@lru_cache(maxsize=16)
def _in_force(day: str, history: str) -> LayoutSet:
    doc, pos = load_with_lines(history)
    entries = doc.get("history")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{history}:1: expected a non-empty list `history`")
    entries = sorted(entries, key=lambda e: str(e["effective_from"]))
    entry = ([e for e in entries if str(e["effective_from"]) <= day] or entries[:1])[-1]
    found = LayoutSet.load(Path(history).parent / entry["layouts"])
    if entry.get("sha256") and entry["sha256"] != found.sha256:
        raise ConfigError(
            f"{history}: layouts {entry['layouts']} do not match the approved hash "
            f"(file {found.sha256[:12]}, approved {str(entry['sha256'])[:12]})"
        )
    return found


def _parse_layouts(doc: dict, pos, path: str) -> tuple[Layout, ...]:
    items = doc.get("layouts")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}:{pos.line(())}: expected a non-empty list `layouts`")
    out: list[Layout] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        here = ("layouts", i)
        where = f"{path}:{pos.line(here)}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: a layout must be a mapping")
        unknown = sorted(set(item) - _LAYOUT_KEYS)
        if unknown:
            raise ConfigError(
                f"{path}:{pos.line(here + (unknown[0],))}: unknown key {unknown[0]!r} in layout"
            )
        for k in ("id", "feed", "title", "columns", "required", "signature"):
            if k not in item:
                raise ConfigError(f"{where}: layout lacks {k!r}")
        lid = str(item["id"])
        if lid in seen:
            raise ConfigError(f"{path}:{pos.line(here + ('id',))}: layout {lid!r} defined twice")
        seen.add(lid)
        if item["feed"] not in FEEDS:
            raise ConfigError(
                f"{path}:{pos.line(here + ('feed',))}: layout {lid}: unknown feed "
                f"{item['feed']!r} (known: {', '.join(FEEDS)})"
            )
        out.append(_parse_layout(item, here, pos, path))
    return tuple(out)


def _parse_layout(item: dict, here: tuple, pos, path: str) -> Layout:
    lid = str(item["id"])
    columns: dict[str, tuple[str, ...]] = {}
    codes: dict[str, tuple[str, ...]] = {}
    owner: dict[str, tuple[str, str]] = {}  # header key -> (canonical column, as written)
    for canon, spec in item["columns"].items():
        at = here + ("columns", canon)
        if not isinstance(spec, dict) or not spec.get("headers"):
            raise ConfigError(f"{path}:{pos.line(at)}: layout {lid}: column {canon} needs headers")
        unknown = sorted(set(spec) - _COLUMN_KEYS)
        if unknown:
            raise ConfigError(f"{path}:{pos.line(at)}: layout {lid}: unknown key {unknown[0]!r}")
        for kind in ("headers", "codes"):
            for j, name in enumerate(spec.get(kind) or []):
                key = header_key(name)
                if key in owner and owner[key][0] != canon:
                    raise ConfigError(
                        f"{path}:{pos.line(at + (kind, j))}: layout {lid}: alias {name!r} of "
                        f"{canon} is already an alias of {owner[key][0]} ({owner[key][1]!r})"
                    )
                owner[key] = (canon, str(name))
        columns[str(canon)] = tuple(str(h) for h in spec["headers"])
        if spec.get("codes"):
            codes[str(canon)] = tuple(str(c) for c in spec["codes"])
    for k in ("required", "signature"):
        for j, c in enumerate(item[k]):
            if c not in columns:
                raise ConfigError(
                    f"{path}:{pos.line(here + (k, j))}: layout {lid}: {k} names {c!r}, "
                    "not one of its columns"
                )
    units = {str(c): str(u) for c, u in (item.get("units") or {}).items()}
    for c, u in units.items():
        if c not in columns or u not in UNITS:
            raise ConfigError(
                f"{path}:{pos.line(here + ('units', c))}: layout {lid}: units: {c}: {u} "
                f"(a column of the layout, in one of {', '.join(UNITS)})"
            )
    combine = {str(c): tuple(parts) for c, parts in (item.get("combine") or {}).items()}
    values = {
        str(c): {str(k): str(v) for k, v in m.items()}
        for c, m in (item.get("values") or {}).items()
    }
    for section, names in (("combine", combine), ("values", values)):
        for c, parts in names.items():
            bad = [p for p in (parts if section == "combine" else (c,)) if p not in columns]
            if bad:
                raise ConfigError(
                    f"{path}:{pos.line(here + (section, c))}: layout {lid}: {section}: "
                    f"{bad[0]!r} is not one of its columns"
                )
    return Layout(
        id=lid,
        feed=str(item["feed"]),
        title=str(item["title"]),
        columns=columns,
        required=tuple(item["required"]),
        signature=tuple(item["signature"]),
        codes=codes,
        combine=combine,
        values=values,
        units=units,
    )


# --------------------------------------------------------------------------- matching


@dataclass
class HeaderMatch:
    layout: Layout | None
    mapping: dict[str, str]  # raw header -> canonical column
    missing: list[str]  # required canonical columns not found
    score: float = 0.0


def match_layout(headers: list[str], layout: Layout) -> HeaderMatch:
    """How well one layout covers these headers (raw header -> canonical column)."""
    exact: dict[str, str] = {}
    loose: dict[str, str] = {}
    for h in headers:
        k = header_key(h)
        exact.setdefault(k, h)
        loose.setdefault(loose_key(k), h)
    mapping: dict[str, str] = {}
    for canon in layout.columns:
        for alias in layout.names(canon):
            k = header_key(alias)
            raw = exact.get(k)
            if raw is None and loose_key(k) != k and not k.endswith(tuple("0123456789")):
                raw = loose.get(loose_key(k))  # a numbered code header, matched by description
            if raw is not None and raw not in mapping:
                mapping[raw] = canon
                break
    found = set(mapping.values())
    missing = [c for c in layout.required if c not in found]
    return HeaderMatch(layout, mapping, missing, len(found) / len(layout.columns))


def match_header(
    headers: list[str], layouts: LayoutSet | tuple[Layout, ...] | None = None
) -> tuple[Layout | None, dict[str, str], list[str]]:
    """Pick the layout whose columns best cover the headers (its signature columns all present).

    Returns (layout or None, raw header -> canonical column, canonical required columns missing).
    """
    m = best_match(headers, layouts)
    return (m.layout, m.mapping, m.missing) if m.layout else (None, {}, [])


def best_match(headers: list[str], layouts=None, require_signature: bool = True) -> HeaderMatch:
    pool = _pool(layouts)
    best = HeaderMatch(None, {}, [], 0.0)
    for layout in pool:
        m = match_layout(headers, layout)
        if require_signature and not set(layout.signature) <= set(m.mapping.values()):
            continue
        if m.score > best.score:
            best = m
    return best


def _pool(layouts) -> tuple[Layout, ...]:
    if layouts is None:
        return LayoutSet.latest().layouts
    return layouts.layouts if isinstance(layouts, LayoutSet) else tuple(layouts)


def merged_header(top: list[str], sub: list[str]) -> list[str]:
    """Two header rows of a sheet with merged cells, as one: a group name over several columns
    (written once, in its first cell) carries on to the right, and a column's name is the group
    with its sub-header, or the top cell alone where the sub-header row is blank."""
    width = max(len(top), len(sub))
    top = list(top) + [""] * (width - len(top))
    sub = list(sub) + [""] * (width - len(sub))
    out, group = [], ""
    for t, s in zip(top, sub):
        t, s = str(t).strip(), str(s).strip()
        if t:
            group = t
        out.append(f"{group}（{s}）" if s and group else (s or t))
    return out


@dataclass
class HeaderAt:
    """Where the header is: its 0-based row in the rows searched, how many rows it spans, the
    header (merged when two rows), and the match."""

    row: int
    rows: int
    header: list[str]
    match: HeaderMatch


def locate_header(rows: list[list[str]], layouts=None) -> HeaderAt | None:
    """The first row (or two merged rows) among the first rows that matches a layout. Title rows
    above the header are skipped; a header whose next row holds sub-headers under merged group
    cells is read as one."""
    pool = _pool(layouts)
    for i, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        if not any(str(c).strip() for c in row):
            continue
        single = best_match([str(c).strip() for c in row], pool)
        merged = None
        if i + 1 < len(rows) and any(not str(c).strip() for c in row):
            both = merged_header(row, rows[i + 1])
            if len(set(both)) == len(both):
                m = best_match(both, pool)
                if m.layout is not None and len(m.mapping) > len(single.mapping):
                    merged = HeaderAt(i, 2, both, m)
        if merged is not None:
            return merged
        if single.layout is not None:
            return HeaderAt(i, 1, [str(c).strip() for c in row], single)
    return None


# The latest layouts under the names the code and the synthetic province use, read on first use
# (not at import: a broken layout file must stop a night with its file and line, not an import).
_NAMES = {
    "PENALTY": "sgs_penalty",
    "LICENCE": "sgs_licence",
    "DISHONEST": "court_dishonest_debtor",
    "CREDIT_RECORD": "credit_record",
    "INSPECTION": "inspection_result",
    "REGISTER": "entity_register",
    "CHANGES": "credit_change",
    "TAX_CREDIT": "tax_credit_rating",
    "COMMITMENT_RESULT": "commitment_result",
    "PENALTY_2016": "sgs_penalty_2016",
    "LICENCE_2016": "sgs_licence_2016",
}


def __getattr__(name: str):
    if name == "LAYOUTS":
        return LayoutSet.latest().layouts
    if name == "BY_ID":
        return {lay.id: lay for lay in LayoutSet.latest().layouts}
    if name in _NAMES:
        return LayoutSet.latest().by_id(_NAMES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
