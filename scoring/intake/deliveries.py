"""A night's deliveries: find the files due by the as-of date that no earlier run has recorded, read
each (encoding, layout), and stage its rows. A file that cannot be used is rejected with a reason;
the night goes on with the others. What counts as a new delivery, a repeat or a correction is
decided in scoring.intake.arrivals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from scoring.common.catalogue import Catalogue
from scoring.common.config import ConfigError
from scoring.common.errors import PipelineError
from scoring.common.frames import concat_frames
from scoring.intake import arrivals as arr
from scoring.intake import ingest as ing
from scoring.intake.layouts import LayoutSet
from scoring.intake.providers import Registry

MISSING_COLUMNS = "missing required columns: "
UNPARSED_COLUMNS = ["line_no", "reason", "raw", "path", "provider"]
STAGE_CHUNK_ROWS = 250_000  # staging's working columns (parsed dates, amounts) per pass


def stage_in_chunks(
    raw: ing.RawFile, stage: Callable[[ing.RawFile], pd.DataFrame], chunk_rows: int
) -> pd.DataFrame:
    """`stage(raw)` over slices of at most `chunk_rows` of the file's rows, concatenated: the
    intermediate frames of a pass follow the chunk, and the rows keep their index."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    n = len(raw.rows)
    if n <= chunk_rows:
        return stage(raw)
    parts = [
        stage(replace(raw, rows=raw.rows.iloc[i : i + chunk_rows], raw=raw.raw.iloc[0:0]))
        for i in range(0, n, chunk_rows)
    ]
    return pd.concat(parts)


def intake_config(as_of) -> tuple[LayoutSet, Registry]:
    """The layouts and the provider registry in force on the night. A layout file or registry that
    cannot be used stops the night before it starts, with its file and line."""
    try:
        return LayoutSet.in_force(as_of), Registry.in_force(as_of)
    except ConfigError as exc:
        raise PipelineError(f"intake configuration refused: {exc}") from None


@dataclass
class StagedNight:
    records: pd.DataFrame
    entities: pd.DataFrame
    changes: pd.DataFrame
    unparsed: pd.DataFrame
    files: list[dict] = field(default_factory=list)  # one landed_files row per file seen
    raw_index: dict[str, str] = field(default_factory=dict)  # file → its raw-values part
    problems: list[dict] = field(
        default_factory=list
    )  # landing lines the operator must see (arrivals.Listing)
    versions: dict = field(default_factory=dict)  # layouts and provider registry read with

    def summary(self, run_id: str) -> dict:
        return {
            "run_id": run_id,
            "files": len(self.files),
            "rejected": sum(1 for r in self.files if r["status"] == "rejected"),
            "received": int(sum(r["received"] for r in self.files)),
            "same_content": sum(1 for r in self.files if r["status"] == "same_content"),
            "landing_problems": self.problems,
        }


def stage_deliveries(
    landing: Path,
    as_of: pd.Timestamp,
    cat: Catalogue,
    history: pd.DataFrame,
    run_id: str,
    save_raw: Callable[[str, pd.DataFrame], None],
    say: Callable[[str], None] = lambda _m: None,
    arrival_cut=None,
    registry: Registry | None = None,
    layouts: LayoutSet | None = None,
    chunk_rows: int = STAGE_CHUNK_ROWS,
    listing: arr.Listing | None = None,
) -> StagedNight:
    """Stage every new delivery in `landing` due by `as_of` (and landed by `arrival_cut`, when
    given), or exactly the files of `listing`, already listed and classified (a backfill stages
    one file per run). `history`: the landed_files rows of earlier runs, which say what is already known (see
    scoring.intake.arrivals). `save_raw(name, frame)` keeps the provider's own values per file.
    Only folders of the provider registry are read, each provider only for its feeds, with the
    layouts and registry in force on `as_of` unless given. A file's rows are staged `chunk_rows` at
    a time (the same staged rows as one pass: staging judges each row by its own values)."""
    registry = registry or Registry.in_force(as_of.date())
    layouts = layouts or LayoutSet.in_force(as_of.date())
    if listing is None:
        listing = arr.classify(arr.list_landing(landing, as_of, arrival_cut, registry), history)
    night = _Night(cat, history, listing, registry, layouts, save_raw, chunk_rows)
    files = listing.candidates
    for i, c in enumerate(files, start=1):
        delivered = c.name_date if c.name_date is not None else as_of
        row = {
            "run_id": run_id,
            "path": c.rel,
            "provider": c.provider,
            "delivered_on": delivered.date(),
            "arrived_at": c.arrived_at.astimezone(dt.UTC).replace(tzinfo=None),
            "sha256": c.sha256,
            "n_bytes": c.n_bytes,
            "received": 0,
            "accepted": 0,
            "quarantined": 0,
            "excluded": 0,
        }
        if c.action == "same_content" and any(
            r["path"] == c.same_as and r["status"] == "rejected" for r in night.file_rows
        ):
            # Its twin was rejected a moment ago: nothing of these bytes was read, so read them.
            c.action, c.same_as = ("correction", c.rel) if c.read_before else ("new", None)
        said = night.repeat(c, row) if c.action == "same_content" else night.read(c, row, delivered)
        say(f"[{i}/{len(files)}] {c.rel}: {said}")
    for p in listing.problems:
        say(f"landing: {p['kind']}: {p['path']}: {p['message']}")
    return StagedNight(
        records=concat_frames(night.frames["records"], columns=ing.STG_RECORD_COLUMNS),
        entities=concat_frames(night.frames["entities"], columns=ing.STG_ENTITY_COLUMNS),
        changes=concat_frames(night.frames["changes"], columns=ing.STG_CHANGE_COLUMNS),
        unparsed=concat_frames(night.frames["held"], columns=UNPARSED_COLUMNS),
        files=night.file_rows,
        raw_index=night.raw_index,
        problems=listing.problems,
        versions={"layouts_sha256": layouts.sha256, "providers_sha256": registry.sha256},
    )


class _Night:
    """What a night's files add up to, file by file: staged frames, landed_files rows, raw parts."""

    def __init__(self, cat, history, listing, registry, layouts, save_raw, chunk_rows):
        self.cat, self.history, self.listing = cat, history, listing
        self.chunk_rows = chunk_rows
        self.registry, self.layouts, self.save_raw = registry, layouts, save_raw
        self.frames: dict[str, list] = {"held": [], "entities": [], "changes": [], "records": []}
        self.file_rows: list[dict] = []
        self.raw_index: dict[str, str] = {}
        self.last_by_feed = _last_delivery_by_feed(history)

    def repeat(self, c, row: dict) -> str:
        """Counts as this day's delivery for freshness; its rows are already known: none added."""
        twin = _twin(c.same_as, c.sha256, self.file_rows, self.history)
        row.update(
            status="same_content",
            feed=twin.get("feed"),
            layout=twin.get("layout"),
            encoding=twin.get("encoding"),
            file_format=twin.get("file_format"),
            received=int(twin.get("received") or 0),
            excluded=int(twin.get("received") or 0),
            message=f"same content as {c.same_as}",
        )
        self.file_rows.append(row)
        return f"same content as {c.same_as} (a delivery; no new rows)"

    def read(self, c, row: dict, delivered: pd.Timestamp) -> str:
        try:
            raw, (kind, frame) = self._stage(c, delivered)
        except Exception as exc:  # a file is the unit of failure: it rejects this file only
            if not isinstance(exc, ing.UnusableFile):
                exc = ing.UnusableFile(
                    "unreadable_content", f"the file could not be staged ({type(exc).__name__})"
                )
            row.update(status="rejected", reject_code=exc.code, message=str(exc))
            self.file_rows.append(row)
            return f"rejected — {exc}"
        note = None
        if c.action == "correction":
            note = f"correction of {c.same_as} (its rows supersede the earlier ones by record key)"
        last = self.last_by_feed.get((c.provider, raw.layout.feed))
        if c.name_date is not None and last is not None and c.name_date.date() < last:
            if c.action == "new":
                self.listing.problem(
                    "dated_before_last_delivery",
                    c.rel,
                    f"named for {c.name_date.date()}, before this feed's last delivery ({last}): "
                    f"read as a late delivery, known from tonight",
                )
        missing = MISSING_COLUMNS + ",".join(raw.missing_required) if raw.missing_required else None
        row.update(
            sha256=raw.sha256,
            n_bytes=raw.n_bytes,
            feed=raw.layout.feed,
            layout=raw.layout.id,
            encoding=raw.encoding,
            file_format=raw.file_format,
            status="staged",
            received=raw.received,
            message=missing or note,
        )
        self.file_rows.append(row)
        self.frames[kind].append(frame)
        if len(raw.bad_rows):
            self.frames["held"].append(raw.bad_rows.assign(path=c.rel, provider=raw.provider))
        self.raw_index[c.rel] = f"{len(self.raw_index):05d}.parquet"
        self.save_raw(self.raw_index[c.rel], raw.raw)
        return f"{raw.layout.title}, {raw.encoding}, {raw.where}, {raw.received:,} rows" + (
            f" — {note}" if note else ""
        )

    def _stage(self, c, delivered: pd.Timestamp):
        """Read one file as its registered provider, for that provider's feeds only, and stage it."""
        provider = self.registry.by_id(c.provider)
        raw = ing.read_file(
            c.path,
            provider=c.provider,
            max_cells=int(self.cat.gates["max_xlsx_cells"]),
            max_bytes=int(self.cat.gates["max_file_bytes"]),
            layouts=self.layouts,
            overrides=provider.overrides if provider else None,
        )
        raw.path = c.rel
        if provider is not None and raw.layout.feed not in provider.feeds:
            self.listing.problem(
                "feed_not_allowed",
                c.rel,
                f"a {raw.layout.feed} file ({raw.layout.title}) from {provider.id}, which "
                f"the provider registry does not let deliver it: not stored",
            )
            raise ing.UnusableFile(
                "feed_not_allowed",
                f"provider {provider.id} may not deliver the {raw.layout.feed} feed "
                f"(registered: {', '.join(provider.feeds)})",
            )
        if raw.missing_required:
            # A schema mismatch is a hard gate: the rows are held with the file, not staged.
            held = pd.DataFrame(
                {
                    "line_no": raw.rows["line_no"],
                    "reason": "schema_mismatch",
                    "raw": ing.raw_json(raw.raw),
                    "path": c.rel,
                    "provider": raw.provider,
                }
            )
            return raw, ("held", held)
        if raw.layout.feed == "register":
            kind, stage = "entities", lambda r: ing.stage_entities(r, delivered)
        elif raw.layout.feed == "credit_change":
            kind, stage = "changes", lambda r: ing.stage_changes(r, delivered)
        else:
            kind, stage = "records", lambda r: ing.stage_records(r, self.cat, delivered)
        return raw, (kind, stage_in_chunks(raw, stage, self.chunk_rows))


def _twin(path: str, sha256: str, this_night: list[dict], history: pd.DataFrame) -> dict:
    for r in this_night:
        if r["path"] == path and r.get("status") != "same_content":
            return r
    # The stored delivery of these very bytes (the same name may have other versions since).
    h = (
        history[
            (history["path"] == path)
            & (history["sha256"] == sha256)
            & (history["status"] == "stored")
        ]
        if len(history)
        else history
    )
    return h.iloc[-1].to_dict() if len(h) else {}


def _last_delivery_by_feed(history: pd.DataFrame) -> dict:
    if not len(history):
        return {}
    h = history[history["status"].isin(arr.SETTLED)].dropna(subset=["feed", "delivered_on"])
    return {
        k: pd.Timestamp(v).date()
        for k, v in h.groupby(["provider", "feed"])["delivered_on"].max().items()
    }


def raw_values(raw_dir: Path, raw_index: dict[str, str], rows: pd.DataFrame) -> pd.Series:
    """The provider's own values (header → value) for these staged rows, read back per file."""
    out = pd.Series(pd.NA, index=rows.index, dtype="string")
    for path, part in rows.groupby("source_file", sort=True):
        raw = pd.read_parquet(raw_dir / raw_index[path])
        raw = raw[raw["line_no"].isin(part["line_no"])]
        by_line = pd.Series(ing.raw_json(raw).to_numpy(), index=raw["line_no"].to_numpy())
        out[part.index] = part["line_no"].map(by_line).to_numpy()
    return out
