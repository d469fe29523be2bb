"""A province of millions of entities, built and written piece by piece: building a world holds
every record it will ever have in memory (about 1 GB per 100,000 entities), so a 3M province is
built as pieces of PIECE_ENTITIES entities, one at a time, each from its own seed, with codes and
record numbers that stay unique across the pieces. Each piece's frames are parked on disk; once
all pieces are built, each delivery file is written from its parts (XLSX only if the whole file
fits a workbook, as ``province._write_feed`` decides for a whole frame).

The deliveries of a province in pieces are not those of the same province built whole (other
random draws); provinces up to ``province.PIECES_FROM`` entities are always built whole.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd

from scoring.intake.arrivals import SHANGHAI, set_arrival
from scoring.world.base import DELIVERY_FORMAT, DELIVERY_TIME, XLSX_MAX_ROWS, stable_seed
from scoring.world.build import build_world
from scoring.world.xlsx_out import text_only, write_xlsx

PIECE_ENTITIES = 250_000


def pieces(n_entities: int, seed: int) -> list[tuple[int, int, int]]:
    """(entities, seed, first entity) of each piece; the first piece keeps the province's seed."""
    out, first = [], 0
    while first < n_entities:
        n = min(PIECE_ENTITIES, n_entities - first)
        out.append((n, seed if not out else stable_seed(seed, "piece", len(out)), first))
        first += n
    return out


def write_in_pieces(out: Path, as_of, period: tuple, bad: tuple, say, deliver, write_truth):
    """Build each piece, deliver its period into parts, then write each file from its parts.
    ``period``: (catalogue, delivered after, (entities, seed, defect rate, world parameters));
    ``deliver``, ``write_truth``: province.deliver_world and province.write_truth (passed in:
    this module is province's helper, not its client). Returns (files written, labels).
    Resumable: a piece whose parts were parked by an earlier, interrupted call is not built again
    (building a 3M province takes about an hour of one core)."""
    cat, after, (n_entities, seed, defect_rate, params) = period
    bad_keys, new_bad = bad
    parts_dir = out / ".pieces" / f"{as_of:%Y%m%d}"
    plan = pieces(n_entities, seed)
    what = {"plan": plan, "defect_rate": defect_rate, "world": params.sha256, "after": str(after)}
    if not parts_dir.is_dir() or _read(parts_dir / "plan.json") != json.loads(json.dumps(what)):
        shutil.rmtree(parts_dir, ignore_errors=True)
        parts_dir.mkdir(parents=True)
        (parts_dir / "plan.json").write_text(json.dumps(what))
    first_record, done = 0, []
    for k, (n, piece_seed, first) in enumerate(plan):
        piece = _read(parts_dir / f"{k}.json")
        if piece is None:
            say(f"piece {k + 1}/{len(plan)}: {n:,} entities from entity {first:,}")
            world = build_world(n, piece_seed, params, shard=(seed, first, first_record))
            piece = _park_piece(
                parts_dir, k, world, (cat, after, as_of, defect_rate), bad, (deliver, write_truth)
            )
            del world
        else:
            say(f"piece {k + 1}/{len(plan)}: parked by an earlier call")
            bad_keys.update(map(tuple, piece["new_bad"]))
            new_bad.extend(map(tuple, piece["new_bad"]))
        first_record += piece["records"]
        done.append(piece)
    parts: dict[tuple[str, str], list[tuple[Path, Path, int]]] = {}
    for k, piece in enumerate(done):
        for prov, feed, rows in piece["files"]:
            stem = parts_dir / f"{prov}.{feed}.{k}"
            parts.setdefault((prov, feed), []).append(
                (Path(f"{stem}.frame.pkl"), Path(f"{stem}.labels.pkl"), rows)
            )
    written, all_labels = [], []
    for (prov, feed), its_parts in parts.items():  # in delivery order (dicts keep insertion order)
        entry, labels = _write_parts(out / "landing", prov, feed, its_parts, as_of, say)
        written.append(entry)
        all_labels.append(labels)
    for name in ("entities.csv", "inspections.csv"):
        _concat_csv(
            [parts_dir / f"truth{k}" / name for k in range(len(done))], out / "ground_truth" / name
        )
    shutil.rmtree(parts_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # other days' pieces may still be parked there
        parts_dir.parent.rmdir()
    return written, all_labels


def _read(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _park_piece(parts_dir: Path, k: int, world, period: tuple, bad: tuple, tools: tuple) -> dict:
    """Park a piece's frames, labels and ground truth; its record, written last (a piece is
    parked whole or not at all). ``period``: (catalogue, after, as of, defect rate)."""
    cat, after, as_of, defect_rate = period
    deliver_world, write_truth = tools
    before = len(bad[1])

    def park(prov, feed, frame, labels):
        stem = parts_dir / f"{prov}.{feed}.{k}"
        frame.to_pickle(f"{stem}.frame.pkl")
        labels.to_pickle(f"{stem}.labels.pkl")
        return [prov, feed, len(frame)]

    files = deliver_world(world, cat, after, as_of, defect_rate, bad, park)
    (parts_dir / f"truth{k}").mkdir(exist_ok=True)
    write_truth(parts_dir / f"truth{k}", world)
    record = {"records": len(world.records), "files": files, "new_bad": bad[1][before:]}
    (parts_dir / f"{k}.json").write_text(json.dumps(record, ensure_ascii=False))
    return record


def _concat_csv(parts: list[Path], target: Path) -> None:
    """CSV files of one header, one after the other, the header once."""
    with open(target, "wb") as out:
        for i, part in enumerate(parts):
            with open(part, "rb") as fh:
                header = fh.readline()
                if i == 0:
                    out.write(header)
                shutil.copyfileobj(fh, out)


def _write_parts(landing: Path, prov: str, feed: str, parts: list, as_of, say):
    """One delivery file from its pieces' parts: its entry in the state and its defect labels,
    each label's line counted in the whole file."""
    fmt, enc = DELIVERY_FORMAT[(prov, feed)]
    rows = sum(p[2] for p in parts)
    if fmt == "xlsx" and rows > XLSX_MAX_ROWS:
        fmt, enc = "csv", "gb18030"
    rel = Path(prov) / f"{as_of:%Y%m%d}_{feed}.{fmt}"
    (landing / prov).mkdir(exist_ok=True)
    say(f"writing {rel} ({rows:,} rows from {len(parts)} pieces, {fmt}, {enc or 'xlsx'})")
    path = landing / rel
    tmp = path.with_name(path.name + ".partial")
    arrival = dt.datetime.combine(as_of.date(), DELIVERY_TIME, tzinfo=SHANGHAI)
    if fmt == "xlsx":  # small enough for a workbook: all parts at once
        frame = pd.concat([pd.read_pickle(f) for f, _, _ in parts], ignore_index=True)
        if text_only(frame):
            write_xlsx(frame, tmp, arrival)
        else:
            frame.to_excel(tmp, index=False, engine="openpyxl")
    else:
        with open(tmp, "w", encoding=enc, newline="") as fh:
            for i, (frame_path, _, _) in enumerate(parts):
                pd.read_pickle(frame_path).to_csv(fh, index=False, header=i == 0)
    labels, before = [], 0
    for _, labels_path, n in parts:
        lab = pd.read_pickle(labels_path)
        labels.append(lab.assign(row_index=lab["row_index"] + before))
        before += n
    tmp.replace(path)
    set_arrival(path, arrival)
    lab = pd.concat(labels, ignore_index=True)
    lab = lab.assign(file=str(rel), line=lab["row_index"] + 2)
    entry = {"file": str(rel), "rows": int(rows), "format": fmt, "encoding": enc or "xlsx"}
    return entry, lab[["file", "line", "defect"]]
