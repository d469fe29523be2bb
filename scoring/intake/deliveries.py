"""A night's deliveries: find the files due by the as-of date that no earlier run has stored, read
each (encoding, layout), and stage its rows. A file that cannot be used is rejected with a reason;
the night goes on with the others."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from scoring.common.catalogue import Catalogue
from scoring.common.frames import concat_frames
from scoring.intake import ingest as ing

MISSING_COLUMNS = "missing required columns: "
UNPARSED_COLUMNS = ["line_no", "reason", "raw", "path", "provider"]


@dataclass
class StagedNight:
    records: pd.DataFrame
    entities: pd.DataFrame
    changes: pd.DataFrame
    unparsed: pd.DataFrame
    files: list[dict] = field(default_factory=list)     # one landed_files row per file seen
    raw_index: dict[str, str] = field(default_factory=dict)  # file → its raw-values part

    def summary(self, run_id: str) -> dict:
        return {"run_id": run_id, "files": len(self.files),
                "rejected": sum(1 for r in self.files if r["status"] == "rejected"),
                "received": int(sum(r["received"] for r in self.files))}


def stage_deliveries(landing: Path, as_of: pd.Timestamp, cat: Catalogue, done: set[str], run_id: str,
                     save_raw: Callable[[str, pd.DataFrame], None],
                     say: Callable[[str], None] = lambda _m: None) -> StagedNight:
    """Stage every new file in `landing` due by `as_of`; `done` holds the digests already stored or
    rejected by earlier runs. `save_raw(name, frame)` keeps the provider's own values per file."""
    files = ing.list_deliveries(landing, as_of)
    rec_frames, ent_frames, chg_frames, bad_frames, file_rows = [], [], [], [], []
    raw_index: dict[str, str] = {}
    for i, (path, delivered) in enumerate(files, start=1):
        rel = path.relative_to(landing).as_posix()
        delivered = delivered if delivered is not None else as_of
        row = {"run_id": run_id, "path": rel, "provider": path.parent.name, "delivered_on": delivered.date(),
               "sha256": "", "n_bytes": 0, "received": 0, "accepted": 0, "quarantined": 0}
        try:
            raw = ing.read_file(path, provider=path.parent.name,
                                max_cells=int(cat.gates["max_xlsx_cells"]), max_bytes=int(cat.gates["max_file_bytes"]))
        except ing.UnusableFile as exc:
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                digest = "unreadable:" + rel
            if digest in done:
                continue
            row.update(sha256=digest, status="rejected", reject_code=exc.code, message=str(exc))
            file_rows.append(row)
            say(f"[{i}/{len(files)}] {rel}: rejected — {exc}")
            continue
        if raw.sha256 in done:
            continue
        row.update(sha256=raw.sha256, n_bytes=raw.n_bytes, feed=raw.layout.feed, layout=raw.layout.id,
                   encoding=raw.encoding, file_format=raw.file_format, status="staged",
                   received=raw.received, message=(MISSING_COLUMNS + ",".join(raw.missing_required)
                                                   if raw.missing_required else None))
        file_rows.append(row)
        raw.path = rel
        if raw.missing_required:
            # A schema mismatch is a hard gate: the rows are held with the file, not staged.
            bad_frames.append(pd.DataFrame({"line_no": raw.rows["line_no"], "reason": "schema_mismatch",
                                            "raw": ing.raw_json(raw.raw), "path": rel, "provider": raw.provider}))
        elif raw.layout.feed == "register":
            ent_frames.append(ing.stage_entities(raw, delivered))
        elif raw.layout.feed == "credit_change":
            chg_frames.append(ing.stage_changes(raw, delivered))
        else:
            rec_frames.append(ing.stage_records(raw, cat, delivered))
        if len(raw.bad_rows):
            bad_frames.append(raw.bad_rows.assign(path=rel, provider=raw.provider))
        raw_index[rel] = f"{len(raw_index):05d}.parquet"
        save_raw(raw_index[rel], raw.raw)
        say(f"[{i}/{len(files)}] {rel}: {raw.layout.title}, {raw.encoding}, {raw.received:,} rows")
    return StagedNight(records=concat_frames(rec_frames), entities=concat_frames(ent_frames),
                       changes=concat_frames(chg_frames), unparsed=concat_frames(bad_frames, columns=UNPARSED_COLUMNS),
                       files=file_rows, raw_index=raw_index)


def raw_values(raw_dir: Path, raw_index: dict[str, str], rows: pd.DataFrame) -> pd.Series:
    """The provider's own values (header → value) for these staged rows, read back per file."""
    out = pd.Series(pd.NA, index=rows.index, dtype="string")
    for path, part in rows.groupby("source_file", sort=True):
        raw = pd.read_parquet(raw_dir / raw_index[path])
        raw = raw[raw["line_no"].isin(part["line_no"])]
        by_line = pd.Series(ing.raw_json(raw).to_numpy(), index=raw["line_no"].to_numpy())
        out[part.index] = part["line_no"].map(by_line).to_numpy()
    return out
