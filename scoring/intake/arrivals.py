"""What a delivery is, and which files in the landing folder a night should read.

A delivery is identified by (provider, file name, content hash) and recorded with its arrival
time (the file's modification time: when it landed). Against the deliveries recorded by earlier
runs, each file in the landing folder is one of:

- ``known``: this very file (same path, size and arrival time, or same path and hash) was
  recorded before. Nothing to do, and it is not re-read: a quiet night costs a directory listing.
- ``same_content``: its bytes equal an earlier delivery under another name whose rows were read
  into the history (stored). It counts as that day's delivery for freshness, adds no rows, and is
  recorded as "same content as <file>". Bytes that were only ever rejected or held (or recorded as
  a copy of such a file) never make a later file "same content": nothing of them was read.
- ``correction``: a file name delivered before, now with different content. Its rows are read
  and supersede the earlier ones by record key (they are not quarantined as duplicates).
- ``new``: everything else.

Files a night must not read yet are listed as problems with a reason, never silently: a name
dated after the as-of date (left for its night), a file that arrived after the night's arrival
cut (catch-up: left for the night that knew it). Folders that cannot be read, and provider folders
that disappeared, are problems too; nothing is lost because nothing is deleted from the store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scoring.common.text import shown
from scoring.intake.ingest import delivery_date
from scoring.intake.providers import folder_problem

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
NIGHTLY_CUT = dt.time(1, 0)  # the nightly run of as-of D starts at 01:00 Asia/Shanghai on D+1


def nightly_arrival_cut(as_of: dt.date) -> dt.datetime:
    """The moment the scheduled run of night ``as_of`` starts: what it can have seen."""
    return dt.datetime.combine(as_of + dt.timedelta(days=1), NIGHTLY_CUT, tzinfo=SHANGHAI)


@dataclass
class Candidate:
    path: Path
    rel: str
    provider: str
    name_date: pd.Timestamp | None
    n_bytes: int
    arrived_at: dt.datetime  # UTC
    action: str = "new"  # known | same_content | correction | new
    sha256: str = ""
    same_as: str | None = None  # same_content: the earlier file; correction: the file it replaces
    read_before: bool = False  # rows under this very name were stored by an earlier night

    @property
    def arrived_on(self) -> dt.date:
        return self.arrived_at.astimezone(SHANGHAI).date()


@dataclass
class Listing:
    candidates: list[Candidate] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)  # {"kind", "path", "message"}

    def problem(self, kind: str, path: str, message: str) -> None:
        self.problems.append({"kind": kind, "path": path, "message": message})


def list_landing(
    landing: Path | str, as_of, arrival_cut: dt.datetime | None = None, registry=None
) -> Listing:
    """Files under landing/<provider>/ a night with this as-of date may read, in a stable order,
    plus one problem line for each folder or file it cannot or must not read yet. With a provider
    registry (scoring.intake.providers), only registered folders are read, compared exactly;
    every other entry of the landing folder is a problem line naming it."""
    landing = Path(landing)
    as_of = pd.Timestamp(as_of)
    out = Listing()
    try:
        providers = []
        # The landing folder is a boundary: a link is never followed, at any depth.
        for p in sorted(landing.iterdir()):
            if registry is None and p.name.startswith("."):
                continue
            if registry is not None:
                pid = _registered(p, registry, out)
                if pid is not None:
                    providers.append((p, pid))
            elif p.is_symlink():
                out.problem(
                    "symlink",
                    p.name,
                    "is a symbolic link: not followed (the landing folder is a boundary)",
                )
            elif p.is_dir():
                providers.append((p, p.name))
    except OSError as exc:
        out.problem(
            "landing_unreadable",
            shown(landing),
            f"landing folder cannot be read: {exc.strerror or exc}",
        )
        return out
    for prov_dir, provider_id in providers:
        _provider_files(landing, prov_dir, provider_id, as_of, arrival_cut, out)
    return out


def _provider_files(
    landing: Path, prov_dir: Path, provider_id: str, as_of, arrival_cut, out
) -> None:
    """The files of one provider folder a night may read, and a problem line for each other entry."""
    try:
        entries = sorted(prov_dir.iterdir())
    except OSError as exc:
        out.problem(
            "folder_unreadable",
            prov_dir.name,
            f"provider folder cannot be read: {exc.strerror or exc}",
        )
        return
    for path in entries:
        rel = path.relative_to(landing).as_posix()
        why = file_name_problem(path.name)
        if why:
            out.problem("bad_file_name", shown(rel, 80), f"not read: {why}")
            continue
        try:
            if path.is_symlink():
                out.problem(
                    "symlink",
                    rel,
                    "is a symbolic link: not followed (the landing folder is a boundary)",
                )
                continue
            if path.is_dir():
                out.problem("not_a_file", rel, "is a folder inside a provider's folder: not read")
                continue
            if not path.is_file() or path.name.endswith(".partial"):
                continue
            st = path.lstat()
        except OSError as exc:
            out.problem("file_unreadable", rel, f"cannot be read: {exc.strerror or exc}")
            continue
        arrived = dt.datetime.fromtimestamp(st.st_mtime, tz=dt.UTC)  # clock-ok: file metadata
        d = delivery_date(path.name)
        if d is not None and pd.isna(d):
            out.problem(
                "impossible_name_date",
                rel,
                f"named for {path.name[:8]}, which is not a date: not read (rename it "
                "YYYYMMDD_feed with its delivery date)",
            )
            continue
        if d is not None and d > as_of:
            out.problem(
                "future_dated",
                rel,
                f"named for {d.date()}, after the as-of date {as_of.date()}: "
                f"left for the night of {d.date()}",
            )
            continue
        if arrival_cut is not None and arrived > arrival_cut:
            out.problem(
                "arrived_after_cut",
                rel,
                f"arrived {arrived.astimezone(SHANGHAI):%Y-%m-%d %H:%M} "
                f"(Asia/Shanghai), after this night's cut "
                f"{arrival_cut.astimezone(SHANGHAI):%Y-%m-%d %H:%M}: "
                "read by the first night that knew it",
            )
            continue
        out.candidates.append(
            Candidate(
                path=path,
                rel=rel,
                provider=provider_id,
                name_date=d,
                n_bytes=int(st.st_size),
                arrived_at=arrived,
            )
        )


def _registered(p: Path, registry, out: Listing) -> str | None:
    """The provider id of a registered landing folder; anything else is one problem line."""
    name = p.name
    why = folder_problem(name)
    if why:
        out.problem("bad_folder_name", shown(name, 40), f"not read: {why}")
        return None
    if p.is_symlink():
        out.problem(
            "symlink", name, "is a symbolic link: not followed (the landing folder is a boundary)"
        )
        return None
    if not p.is_dir():
        out.problem(
            "not_in_provider_folder",
            name,
            "is a file at the top of the landing folder, not in a provider's folder: not read",
        )
        return None
    prov = registry.by_folder(name)
    if prov is None:
        out.problem(
            "unregistered_folder",
            name,
            f"folder {name}/ is not a registered provider folder (provider registry "
            f"{registry.sha256[:12]}): nothing in it is read",
        )
        return None
    return prov.id


def file_name_problem(name: str) -> str | None:
    """Why a delivered file's name cannot be recorded as it is (None if it can)."""
    if any(0xDC80 <= ord(ch) <= 0xDCFF for ch in name):
        return "its name is not valid UTF-8"
    if len(name) > 200:
        return f"its name has {len(name):,} characters (at most 200)"
    if shown(name) != name:
        return "its name holds control or invisible characters"
    return None


def sha256_path(path: Path) -> str:
    h = hashlib.sha256()
    # O_NOFOLLOW: a file swapped for a link after listing is refused (ELOOP), never followed.
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# Statuses of earlier deliveries that are settled (a "held" file, stopped by a gate, is read again).
SETTLED = ("stored", "rejected", "same_content")


def classify(listing: Listing, history: pd.DataFrame, hasher=sha256_path) -> Listing:
    """Decide each candidate's action against the deliveries recorded by earlier runs.

    ``history``: landed_files rows of other runs (path, provider, sha256, n_bytes, arrived_at,
    status, delivered_on). Only files that are not known by (path, size, arrival time) are hashed.
    """
    h = history[history["status"].isin(SETTLED)] if len(history) else history
    by_stat: set[tuple] = set()
    by_path_sha: set[tuple] = set()
    first_by_sha: dict[str, str] = {}
    latest_by_path: dict[str, str] = {}
    if len(h):
        h = h.sort_values(["delivered_on", "path"], kind="stable")
        # Content counts as known only if some delivery of it was read into the history: a rejected
        # file, and a "same content" copy of a file that was then rejected or held, read nothing.
        read = set(h.loc[h["status"] == "stored", "sha256"])
        for r in h.itertuples(index=False):
            when = _as_utc(r.arrived_at)
            if when is not None and not pd.isna(r.n_bytes):
                by_stat.add(
                    (r.path, int(r.n_bytes), when)
                )  # untouched since: not even hashed again
            if r.sha256 not in read:
                continue
            by_path_sha.add((r.path, r.sha256))
            first_by_sha.setdefault(r.sha256, r.path)
            latest_by_path[r.path] = r.sha256
    # A provider that delivered before but has no folder now: say so every night it is missing.
    present = {c.provider for c in listing.candidates} | {
        p["path"].split("/")[0] for p in listing.problems if p["kind"] != "landing_unreadable"
    }
    if len(history) and not any(p["kind"] == "landing_unreadable" for p in listing.problems):
        for prov in sorted(set(history["provider"]) - present):
            listing.problem(
                "provider_folder_missing",
                prov,
                f"provider folder {prov}/ is gone from the landing folder; its earlier deliveries "
                "stay in the store, and its freshness gate watches it",
            )
    this_run_sha: dict[str, str] = {}
    kept = []
    for c in listing.candidates:
        if (c.rel, c.n_bytes, c.arrived_at) in by_stat:
            continue
        try:
            c.sha256 = hasher(c.path)
        except OSError as exc:
            listing.problem("file_unreadable", c.rel, f"cannot be read: {exc.strerror or exc}")
            continue
        if (c.rel, c.sha256) in by_path_sha:
            continue  # the same file, touched: nothing new
        earlier = first_by_sha.get(c.sha256) or this_run_sha.get(c.sha256)
        if earlier is not None:
            c.action, c.same_as = "same_content", earlier
        elif c.rel in latest_by_path:
            c.action, c.same_as = "correction", c.rel
        c.read_before = c.rel in latest_by_path
        this_run_sha.setdefault(c.sha256, c.rel)
        kept.append(c)
    listing.candidates = kept
    return listing


def _as_utc(v) -> dt.datetime | None:
    if v is None or (not isinstance(v, dt.datetime) and pd.isna(v)):
        return None
    ts = pd.Timestamp(v)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def set_arrival(path: Path | str, when: dt.datetime) -> None:
    """Stamp a file's arrival time (tests and the demo province simulate when providers deliver)."""
    ts = when.timestamp()
    os.utime(path, (ts, ts))
