"""The provider registry (``config/providers.yaml``): who may deliver what, from which folder.

Only a registered landing folder is read. A folder is compared with the registry exactly (no case
folding, no trimming, no Unicode normalisation): ``SAMR``, ``samr..`` and ``sa mr`` are not
``samr``. Each provider names the feeds it may deliver (only the courts deliver the
dishonest-debtor list) and may carry layout overrides: its own headers mapped onto a layout's
canonical columns, reviewed and committed by the operator (``credit layout suggest`` proposes
one).

The file is versioned like the catalogue: a list of versions with effective dates, each pinned by
the sha256 of its ``providers`` list's canonical JSON; a night reads with the version in force on
its as-of date and its manifest names that hash. Each provider key is checked by one entry of
``PROVIDER_FIELDS``: a new kind of key (a delivery source, a snapshot flag) is one more entry, and
any key not listed there is refused at load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from scoring.common.config import CONFIG_DIR, ConfigError, content_hash, load_with_lines
from scoring.common.text import shown
from scoring.intake.layouts import FEEDS, LayoutSet, header_key
from scoring.intake.provider_sources import check_sources

PROVIDERS_FILE = CONFIG_DIR / "providers.yaml"
MAX_FOLDER_CHARS = 64
INCREMENT, SNAPSHOT = "increment", "snapshot"
# Changes are events (a correction, a revocation), never a list whose absent rows mean anything.
NOT_SNAPSHOT_FEEDS = ("credit_change",)
SNAPSHOT_MAX_DROP = 0.05  # a snapshot dropping more of its previous rows is held for a person


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    folder: str
    feeds: tuple[str, ...]
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)  # layout -> header -> col
    extra: dict = field(default_factory=dict)  # keys added by later schema entries

    def delivery(self, feed: str) -> str:
        """How this provider delivers ``feed``: ``increment`` (the day's new and changed rows, the
        default) or ``snapshot`` (its whole current list every time; scoring.intake.snapshots)."""
        d = self.extra.get("delivery", INCREMENT)
        mode = d if isinstance(d, str) else d.get(feed, INCREMENT)
        return INCREMENT if feed in NOT_SNAPSHOT_FEEDS else mode

    def snapshot_max_drop(self) -> float:
        """The share of its previous snapshot's rows a snapshot may drop before it is held."""
        return float(self.extra.get("snapshot_max_drop", SNAPSHOT_MAX_DROP))


@dataclass(frozen=True)
class Registry:
    providers: tuple[Provider, ...]
    sha256: str
    effective_from: str = ""
    source: str = ""
    doc: list = field(default_factory=list, repr=False, compare=False)  # what the hash is of

    def by_folder(self, name: str) -> Provider | None:
        """The provider whose landing folder is exactly ``name``."""
        return next((p for p in self.providers if p.folder == name), None)

    def by_id(self, pid: str) -> Provider | None:
        return next((p for p in self.providers if p.id == pid), None)

    @classmethod
    def in_force(cls, as_of, path: Path | str | None = None) -> Registry:
        # the module's file looked up at call time: a test or a bench may point it elsewhere
        return _in_force(str(as_of)[:10], str(path or PROVIDERS_FILE))

    @classmethod
    def latest(cls, path: Path | str | None = None) -> Registry:
        return _in_force("2262-01-01", str(path or PROVIDERS_FILE))

    @classmethod
    def load(cls, path: Path | str, as_of="2262-01-01") -> Registry:
        return _in_force(str(as_of)[:10], str(path))


def folder_problem(name: str) -> str | None:
    """Why a landing entry's name can never be a provider folder (None if it could be one)."""
    if any(0xDC80 <= ord(ch) <= 0xDCFF for ch in name):
        return "its name is not valid UTF-8"
    if len(name) > MAX_FOLDER_CHARS:
        return f"its name has {len(name):,} characters (a provider folder has at most {MAX_FOLDER_CHARS})"
    if shown(name) != name:
        return "its name holds control or invisible characters"
    return None


# --------------------------------------------------------------------------- loading


@lru_cache(maxsize=16)
def _in_force(day: str, path: str) -> Registry:
    doc, pos = load_with_lines(path)
    unknown = sorted(set(doc) - {"versions"})
    if unknown:
        raise ConfigError(f"{path}:{pos.line((unknown[0],))}: unknown key {unknown[0]!r}")
    versions = doc.get("versions")
    if not isinstance(versions, list) or not versions:
        raise ConfigError(f"{path}:1: expected a non-empty list `versions`")
    for i, v in enumerate(versions):
        extra = sorted(set(v) - {"effective_from", "sha256", "approved_by", "reason", "providers"})
        if extra or "effective_from" not in v or "providers" not in v:
            what = f"unknown key {extra[0]!r}" if extra else "needs effective_from and providers"
            raise ConfigError(f"{path}:{pos.line(('versions', i))}: version {i + 1}: {what}")
    order = sorted(range(len(versions)), key=lambda i: str(versions[i]["effective_from"]))
    chosen = ([i for i in order if str(versions[i]["effective_from"]) <= day] or order[:1])[-1]
    v = versions[chosen]
    sha = content_hash(v["providers"])
    if v.get("sha256") and v["sha256"] != sha:
        raise ConfigError(
            f"{path}:{pos.line(('versions', chosen, 'sha256'))}: providers of the version from "
            f"{v['effective_from']} do not match the approved hash "
            f"(content {sha[:12]}, approved {str(v['sha256'])[:12]})"
        )
    layouts = LayoutSet.in_force(day)
    provs = _providers(v["providers"], ("versions", chosen, "providers"), pos, path, layouts)
    return Registry(
        providers=provs,
        sha256=sha,
        effective_from=str(v["effective_from"]),
        source=path,
        doc=v["providers"],
    )


def _providers(items, at: tuple, pos, path: str, layouts: LayoutSet) -> tuple[Provider, ...]:
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}:{pos.line(at)}: expected a non-empty list of providers")
    out: list[Provider] = []
    for i, item in enumerate(items):
        here = at + (i,)
        if not isinstance(item, dict):
            raise ConfigError(f"{path}:{pos.line(here)}: a provider must be a mapping")
        unknown = sorted(set(item) - set(PROVIDER_FIELDS))
        if unknown:
            raise ConfigError(
                f"{path}:{pos.line(here + (unknown[0],))}: unknown key {unknown[0]!r} "
                f"(known: {', '.join(PROVIDER_FIELDS)})"
            )
        values = {}
        for key, (required, check) in PROVIDER_FIELDS.items():
            if key not in item:
                if required:
                    raise ConfigError(f"{path}:{pos.line(here)}: provider lacks {key!r}")
                continue
            err = check(item[key], layouts)
            if err:
                raise ConfigError(f"{path}:{pos.line(here + (key,) + err[1])}: {key}: {err[0]}")
            values[key] = item[key]
        for key in ("id", "folder"):
            clash = next((p for p in out if getattr(p, key) == values[key]), None)
            if clash is not None:
                raise ConfigError(
                    f"{path}:{pos.line(here + (key,))}: {key} {values[key]!r} is also provider "
                    f"{clash.id}'s"
                )
        out.append(
            Provider(
                id=values["id"],
                name=values["name"],
                folder=values["folder"],
                feeds=tuple(values["feeds"]),
                overrides={
                    lay: dict(m) for lay, m in sorted((values.get("overrides") or {}).items())
                },
                extra={k: v for k, v in values.items() if k not in _CORE},
            )
        )
    return tuple(out)


def _text(v, _layouts) -> tuple[str, tuple] | None:
    return None if isinstance(v, str) and v.strip() else ("must be non-empty text", ())


def _folder(v, _layouts) -> tuple[str, tuple] | None:
    if not isinstance(v, str) or not v or v in (".", "..") or "/" in v or "\x00" in v:
        return ("must be one folder name", ())
    if v.startswith(".") or v != v.strip():
        return (f"{shown(v)!s} starts with a dot or has spaces at its ends", ())
    why = folder_problem(v)
    return (f"{shown(v, 40)}: {why}", ()) if why else None


def _feeds(v, _layouts) -> tuple[str, tuple] | None:
    if not isinstance(v, list) or not v:
        return ("must be a non-empty list of feeds", ())
    bad = [f for f in v if f not in FEEDS]
    return (f"unknown feed {bad[0]!r} (known: {', '.join(FEEDS)})", ()) if bad else None


def _overrides(v, layouts: LayoutSet) -> tuple[str, tuple] | None:
    """layout id -> {provider's header: canonical column}; two headers on one column, or a header
    that is already another column's alias in that layout, is refused."""
    if not isinstance(v, dict):
        return ("must map layout ids to {header: column}", ())
    for lid, mapping in v.items():
        if lid not in layouts.ids():
            return (f"unknown layout {lid!r}", (lid,))
        lay = layouts.by_id(lid)
        if not isinstance(mapping, dict):
            return (f"{lid}: must map the provider's headers to columns", ())
        taken: dict[str, str] = {}
        for header, canon in mapping.items():
            if canon not in lay.columns:
                return (
                    f"{lid}: {shown(header)} -> {canon!r}: not a column of {lid}",
                    (lid, header),
                )
            if canon in taken:
                return (
                    f"{lid}: headers {shown(taken[canon])!r} and {shown(header)!r} both map to "
                    f"column {canon}",
                    (lid, header),
                )
            taken[canon] = str(header)
            owner = next(
                (
                    c
                    for c in lay.columns
                    for a in lay.names(c)
                    if header_key(a) == header_key(header)
                ),
                None,
            )
            if owner is not None and owner != canon:
                return (
                    f"{lid}: {shown(header)!r} is already the layout's header for {owner}",
                    (lid, header),
                )
    return None


def _delivery(v, _layouts) -> tuple[str, tuple] | None:
    """``snapshot`` or ``increment`` for all the provider's feeds, or per feed {feed: mode}."""
    modes = (INCREMENT, SNAPSHOT)
    items = {"*": v} if isinstance(v, str) else v
    if not isinstance(items, dict) or not items:
        return (f"must be one of {', '.join(modes)}, or map feeds to one of them", ())
    for feed, mode in items.items():
        at = () if feed == "*" else (feed,)
        if feed != "*" and feed not in FEEDS:
            return (f"unknown feed {feed!r} (known: {', '.join(FEEDS)})", at)
        if mode not in modes:
            return (f"{mode!r} is not a delivery mode ({', '.join(modes)})", at)
        if mode == SNAPSHOT and feed in NOT_SNAPSHOT_FEEDS:
            return (f"{feed} is a feed of events, never a snapshot", at)
    return None


def _share(v, _layouts) -> tuple[str, tuple] | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1
    return None if ok else ("must be a share between 0 and 1 (e.g. 0.05)", ())


# key -> (required, check(value, layouts) -> (message, line or 0) | None)
PROVIDER_FIELDS: dict[str, tuple[bool, Callable]] = {
    "id": (True, _text),
    "name": (True, _text),
    "folder": (True, _folder),
    "feeds": (True, _feeds),
    "overrides": (False, _overrides),
    "sources": (False, check_sources),  # where the nightly pull fetches from (exchange)
    # increment (default) | snapshot, for all feeds or per feed: scoring.intake.snapshots
    "delivery": (False, _delivery),
    "snapshot_max_drop": (False, _share),  # default SNAPSHOT_MAX_DROP
}
_CORE = {"id", "name", "folder", "feeds", "overrides"}
