"""A night's deliveries: find the files due by the as-of date that no earlier run has recorded, read
each (encoding, layout), and stage its rows. A file that cannot be used is rejected with a reason;
the night goes on with the others. What counts as a new delivery, a repeat or a correction is
decided in scoring.intake.arrivals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scoring.common.catalogue import Catalogue
from scoring.common.config import ConfigError
from scoring.common.errors import PipelineError
from scoring.intake import arrivals as arr
from scoring.intake import ingest as ing
from scoring.intake import sinks
from scoring.intake.csv_stream import BLOCK_BYTES
from scoring.intake.layouts import LayoutSet
from scoring.intake.providers import Registry
from scoring.intake.snapshot_files import SnapshotNight

MISSING_COLUMNS = "missing required columns: "
STAGE_CHUNK_ROWS = 250_000  # a file's rows read, staged and written per chunk

# each staged chunk of a file, on its way to its table: (candidate, kind, rows) -> rows to write
OnChunk = Callable[[arr.Candidate, str, pd.DataFrame], pd.DataFrame]


def intake_config(as_of) -> tuple[LayoutSet, Registry]:
    """The layouts and the provider registry in force on the night. A layout file or registry that
    cannot be used stops the night before it starts, with its file and line."""
    try:
        return LayoutSet.in_force(as_of), Registry.in_force(as_of)
    except ConfigError as exc:
        raise PipelineError(f"intake configuration refused: {exc}") from None


@dataclass
class StagedNight:
    """What a night's files added up to: counts and file rows; the staged rows are in `out`."""

    out: Path  # the staged tables (scoring.intake.sinks.TABLES) and raw/ parts
    files: list[dict] = field(default_factory=list)  # one landed_files row per file seen
    raw_index: dict[str, str] = field(default_factory=dict)  # file → its raw-values part
    problems: list[dict] = field(
        default_factory=list
    )  # landing lines the operator must see (arrivals.Listing)
    versions: dict = field(default_factory=dict)  # layouts and provider registry read with

    def table(self, kind: str) -> pd.DataFrame:
        """A staged table read back whole (for a look at a small night: tests, the CLI)."""
        return pd.read_parquet(self.out / f"{sinks.TABLES[kind]}.parquet")

    @property
    def records(self) -> pd.DataFrame:
        return self.table("records")

    @property
    def entities(self) -> pd.DataFrame:
        return self.table("entities")

    @property
    def changes(self) -> pd.DataFrame:
        return self.table("changes")

    @property
    def unparsed(self) -> pd.DataFrame:
        return self.table("held")

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
    out: Path,
    say: Callable[[str], None] = lambda _m: None,
    arrival_cut=None,
    registry: Registry | None = None,
    layouts: LayoutSet | None = None,
    chunk_rows: int = STAGE_CHUNK_ROWS,
    listing: arr.Listing | None = None,
    on_chunk: OnChunk | None = None,
    snapshots: SnapshotNight | None = None,
    read_block: int = BLOCK_BYTES,
) -> StagedNight:
    """Stage every new delivery in `landing` due by `as_of` (and landed by `arrival_cut`, when
    given), or exactly the files of `listing`, already listed and classified (a backfill stages
    one file per run). `history`: the landed_files rows of earlier runs, which say what is already
    known (see scoring.intake.arrivals). The staged tables are written into the folder `out`, and
    the provider's own values per file into `out/raw` (scoring.intake.sinks). Only folders of the
    provider registry are read, each provider only for its feeds, with the layouts and registry
    in force on `as_of` unless given. A file is read, staged and written `chunk_rows` rows at a
    time (the same staged rows as one pass: staging judges each row by its own values); each
    staged chunk passes through `on_chunk` (when given) before it is written. ``snapshots``: the
    night's full-snapshot feeds; each staged chunk of theirs is diffed on its way (only new and
    changed rows written), their withdrawals written after them (scoring.intake.snapshot_files). A CSV
    is read `read_block` bytes at a time."""
    registry = registry or Registry.in_force(as_of.date())
    layouts = layouts or LayoutSet.in_force(as_of.date())
    if listing is None:
        listing = arr.classify(arr.list_landing(landing, as_of, arrival_cut, registry), history)
    out_sinks = sinks.StagedSinks(out)
    night = _Night(cat, history, listing, registry, layouts, out_sinks, chunk_rows, on_chunk)
    night.read_block = read_block
    night.snapshots = snapshots
    if snapshots is not None:
        snapshots.begin([c.rel for c in listing.candidates])
    try:
        files = listing.candidates
        for i, c in enumerate(files, start=1):
            say(f"[{i}/{len(files)}] {c.rel}: {night.take(c, run_id, as_of)}")
    except BaseException:
        out_sinks.abandon()
        raise
    out_sinks.close()
    for p in listing.problems:
        say(f"landing: {p['kind']}: {p['path']}: {p['message']}")
    return StagedNight(
        out=Path(out),
        files=night.file_rows,
        raw_index=night.raw_index,
        problems=listing.problems,
        versions={"layouts_sha256": layouts.sha256, "providers_sha256": registry.sha256},
    )


class _Night:
    """What a night's files add up to, file by file: landed_files rows and raw parts, the staged
    rows written to the sinks chunk by chunk (never held)."""

    def __init__(self, cat, history, listing, registry, layouts, out, chunk_rows, on_chunk):
        self.cat, self.history, self.listing = cat, history, listing
        self.chunk_rows, self.on_chunk, self.read_block = chunk_rows, on_chunk, BLOCK_BYTES
        self.registry, self.layouts, self.sinks = registry, layouts, out
        self.file_rows: list[dict] = []
        self.raw_index: dict[str, str] = {}
        self.last_by_feed = _last_delivery_by_feed(history)
        self.snapshots: SnapshotNight | None = None

    def take(self, c, run_id: str, as_of: pd.Timestamp) -> str:
        """One candidate file: a repeat of known bytes, or read and staged. Says what it was."""
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
            "withdrawn": 0,
        }
        if c.action == "same_content" and any(
            r["path"] == c.same_as and r["status"] == "rejected" for r in self.file_rows
        ):
            # Its twin was rejected a moment ago: nothing of these bytes was read, so read them.
            c.action, c.same_as = ("correction", c.rel) if c.read_before else ("new", None)
        elif c.action == "same_content" and self.snapshot_twin(c):
            # The bytes of an earlier snapshot are the provider's whole list again (a list that
            # went back to what it was): diffed against the snapshot in force, not skipped.
            c.action, c.same_as = "new", None
        return self.repeat(c, row) if c.action == "same_content" else self.read(c, row, delivered)

    def snapshot_twin(self, c) -> bool:
        """Whether ``c`` repeats the bytes of an earlier file of a full-snapshot feed."""
        if self.snapshots is None:
            return False
        feed = _twin(c.same_as, c.sha256, self.file_rows, self.history).get("feed")
        return isinstance(feed, str) and self.snapshots.is_snapshot(c.provider, feed)

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
        mark = self.sinks.mark()
        part = f"{len(self.raw_index):05d}.parquet"
        raw_sink = sinks.RawSink(self.sinks.raw_dir / part)
        try:
            raw, received = self._stage(c, delivered, raw_sink)
            raw_sink.close()
        except Exception as exc:  # a file is the unit of failure: it rejects this file only
            raw_sink.abandon()
            self.sinks.rollback(mark)  # what it had written so far goes with it
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
            received=received,
            message=missing or note,
        )
        if self.snapshots is not None:
            row.update(self.snapshots.file_row(c.rel))
        self.file_rows.append(row)
        self.raw_index[c.rel] = part
        return f"{raw.layout.title}, {raw.encoding}, {raw.where}, {received:,} rows" + (
            f" — {note}" if note else ""
        )

    def _pass(self, c, kind: str, frame: pd.DataFrame) -> None:
        """Every staged chunk of every file passes here on its way to its table (`kind`:
        records, entities, changes, held): `on_chunk` sees it, and says what is written."""
        if self.snapshots is not None:  # a snapshot's unchanged rows stop here
            frame = self.snapshots.on_chunk(c.rel, kind, frame)
        if self.on_chunk is not None:
            frame = self.on_chunk(c, kind, frame)
        self.sinks.write(kind, frame)

    def _stage(self, c, delivered: pd.Timestamp, raw_sink) -> tuple[ing.RawFile, int]:
        """Read one file as its registered provider, for that provider's feeds only, and stage it
        chunk by chunk. (its head, rows received)"""
        provider = self.registry.by_id(c.provider)
        head, chunks = ing.open_file(
            c.path,
            self.chunk_rows,
            provider=c.provider,
            max_cells=int(self.cat.gates["max_xlsx_cells"]),
            max_bytes=int(self.cat.gates["max_file_bytes"]),
            layouts=self.layouts,
            overrides=provider.overrides if provider else None,
            block=self.read_block,
        )
        try:
            return self._stage_chunks(c, head, chunks, delivered, raw_sink)
        finally:
            chunks.close()  # (the file, too, when it is refused before its first chunk)

    def _stage_chunks(self, c, head, chunks, delivered, raw_sink) -> tuple[ing.RawFile, int]:
        provider = self.registry.by_id(c.provider)
        if provider is not None and head.layout.feed not in provider.feeds:
            self.listing.problem(
                "feed_not_allowed",
                c.rel,
                f"a {head.layout.feed} file ({head.layout.title}) from {provider.id}, which "
                f"the provider registry does not let deliver it: not stored",
            )
            raise ing.UnusableFile(
                "feed_not_allowed",
                f"provider {provider.id} may not deliver the {head.layout.feed} feed "
                f"(registered: {', '.join(provider.feeds)})",
            )
        kind, stage = self._staging(head, delivered)
        if self.snapshots is not None:
            self.snapshots.start(c.rel, head, kind)
        received, unparsed_after = 0, []
        for chunk in chunks:
            chunk.path = c.rel
            received += chunk.received
            raw_sink.write(chunk.raw)
            self._pass(c, kind, stage(chunk))
            bad = chunk.bad_rows.assign(path=c.rel, provider=chunk.provider)
            if kind == "held":
                # A held file's unparseable rows follow its held rows, as they always have.
                unparsed_after.append(bad)
            elif len(bad):
                self._pass(c, "held", bad)
        for bad in unparsed_after:
            if len(bad):
                self._pass(c, "held", bad)
        if self.snapshots is not None:  # its withdrawals: the diff's own rows, written after it
            self.sinks.write(kind, self.snapshots.finish(c.rel, received, delivered))
        head.path = c.rel
        return head, received

    def _staging(self, head: ing.RawFile, delivered: pd.Timestamp):
        """(kind of staged rows, how a chunk of the file is staged)."""
        if head.missing_required:
            # A schema mismatch is a hard gate: the rows are held with the file, not staged.
            return "held", lambda r: pd.DataFrame(
                {
                    "line_no": r.rows["line_no"],
                    "reason": "schema_mismatch",
                    "raw": ing.raw_json(r.raw),
                    "path": r.path,
                    "provider": r.provider,
                }
            )
        feed = head.layout.feed
        if feed == "register":
            return "entities", lambda r: ing.stage_entities(r, delivered)
        if feed == "credit_change":
            return "changes", lambda r: ing.stage_changes(r, delivered)
        return "records", lambda r: ing.stage_records(r, self.cat, delivered)


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
    """The provider's own values (header → value) for these staged rows, read back per file (only
    the rows asked for, a batch of the file at a time: memory follows the batch, not the file)."""
    out = pd.Series(pd.NA, index=rows.index, dtype="string")
    for path, part in rows.groupby("source_file", sort=True):
        lines = sorted({int(n) for n in part["line_no"]})
        raw = _raw_lines(raw_dir / raw_index[path], lines).to_pandas()
        by_line = pd.Series(ing.raw_json(raw).to_numpy(), index=raw["line_no"].to_numpy())
        out[part.index] = part["line_no"].map(by_line).to_numpy()
    return out


RAW_BATCH_ROWS = 65_536


def _raw_lines(path: Path, lines: list[int]) -> pa.Table:
    """The rows of a raw file at these line numbers, in file order (what ``pq.read_table`` with a
    line filter gives), read a batch at a time; a row group without one of them is not read."""
    f = pq.ParquetFile(path)
    wanted = pa.array(lines).cast(f.schema_arrow.field("line_no").type)
    groups = [
        i
        for i in range(f.num_row_groups)
        if pc.any(pc.is_in(f.read_row_group(i, columns=["line_no"])["line_no"], wanted)).as_py()
    ]
    kept = [
        b.filter(pc.is_in(b.column("line_no"), wanted))
        for b in f.iter_batches(RAW_BATCH_ROWS, row_groups=groups)
    ]
    return pa.Table.from_batches([b for b in kept if b.num_rows], schema=f.schema_arrow)
