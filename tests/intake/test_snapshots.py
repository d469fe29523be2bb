"""Full-snapshot providers (``delivery: snapshot``): the market regulator sends its whole register
every night. Over several nights a snapshot with a few new, changed and vanished rows stores the
same history as the same changes delivered as an increment, unchanged rows counted as excluded; a
night run again diffs against the same previous snapshot; a snapshot that is empty, truncated or
drops most rows is held with its reason, the previous snapshot kept in force until the next good
one (or an operator's waiver). Nights run whole (ingest to publish) on a real store."""

from __future__ import annotations

import copy
import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from scoring import pipeline
from scoring.common.config import CONFIG_DIR, content_hash
from scoring.history import snapshot_index
from scoring.history.store import Store, landed_files
from scoring.intake import providers
from scoring.intake.arrivals import SHANGHAI, set_arrival
from scoring.intake.snapshots import WITHDRAWN_STATUS

FIRST = "2026-06-30"
NIGHTS = ["2026-07-01", "2026-07-02", "2026-07-03", "2026-07-06", "2026-07-07", "2026-07-08"]
REGISTER = "samr/{}_register.csv"
CONTENT = [
    "uscc",
    "subject_name",
    "entity_type",
    "industry",
    "division_code",
    "registered_date",
    "entity_status",
    "legal_rep_name",
    "legal_rep_id_number",
    "phone",
    "known_from",
]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    from scoring.world.province import write_deliveries

    out = tmp_path_factory.mktemp("snapshot_province")
    write_deliveries(out, FIRST, n_entities=300, seed=5, defect_rate=0.0)
    return out / "landing"


@pytest.fixture(scope="module")
def snapshot_registry(tmp_path_factory) -> Path:
    """The provider registry with a version from the first night on in which the market
    regulator's register is a snapshot feed."""
    path = tmp_path_factory.mktemp("registry") / "providers.yaml"
    doc = yaml.safe_load((CONFIG_DIR / "providers.yaml").read_text(encoding="utf-8"))
    provs = copy.deepcopy(max(doc["versions"], key=lambda v: v["effective_from"])["providers"])
    next(p for p in provs if p["id"] == "samr")["delivery"] = {"register": "snapshot"}
    doc["versions"].append(
        {"effective_from": FIRST, "sha256": content_hash(provs), "providers": provs}
    )
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _arrive(path: Path, day: str) -> None:
    d = dt.date.fromisoformat(day)
    set_arrival(path, dt.datetime.combine(d, dt.time(19), tzinfo=SHANGHAI))


def deliver(landing: Path, made: Path, day: str, register: pd.DataFrame | bytes) -> None:
    """The day's files: the register (a frame, or raw bytes) and every other feed's zero report."""
    from scoring.world.province import FEED_LAYOUT, write_frame

    stamp = day.replace("-", "")
    for f in sorted(made.glob("*/*")):
        feed = f.stem.split("_", 1)[1]
        target = landing / f.parent.name / f"{stamp}_{feed}{f.suffix}"
        if feed == "register":
            if isinstance(register, bytes):
                target.write_bytes(register)
            else:
                register.to_csv(target, index=False, encoding="utf-8")
        else:
            empty = pd.DataFrame(columns=FEED_LAYOUT[feed].standard_headers())
            write_frame(empty, target, f.suffix[1:], None if f.suffix == ".xlsx" else "utf-8")
        _arrive(target, day)


def first_register(made: Path) -> pd.DataFrame:
    return pd.read_csv(made / REGISTER.format("20260630"), dtype=str, keep_default_na=False)


def changed(reg: pd.DataFrame, night: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the whole register after night ``night``'s changes, the same changes as an increment):
    two rows vanish, two change, two are new; the increment sends the new and changed rows and
    the vanished ones marked withdrawn."""
    code, name, status = reg.columns[0], reg.columns[1], reg.columns[6]
    start = 10 * night
    gone = reg.iloc[[start, start + 1]].copy()
    edit = reg.iloc[[start + 2, start + 3]].copy()
    edit[name] = edit[name] + f"（更名{night}）"
    edit[status] = "注销"
    new = reg.iloc[[start + 4, start + 5]].copy()
    new[code] = _usccs(night, 2)
    new[name] = new[name] + f"（新设{night}）"
    whole = reg.drop(index=gone.index)
    whole.loc[edit.index] = edit
    whole = pd.concat([whole, new], ignore_index=True)
    withdrawn = gone.assign(**{status: WITHDRAWN_STATUS})
    return whole, pd.concat([new, edit, withdrawn], ignore_index=True)


def _usccs(night: int, n: int) -> list[str]:
    import numpy as np

    from scoring.common.codes import make_uscc

    body = np.array([[9, 9, 0, night, 0, 0, 0, i] for i in range(n)])
    return list(make_uscc(np.array(["9"] * n), np.array(["1"] * n), np.array(["230102"] * n), body))


def night(home: Path, landing: Path, day: str, url: str | None = None, waivers=()) -> dict:
    ctx = pipeline.RunContext(as_of=day, landing=landing, home=home, db_url=url, waivers=waivers)
    return pipeline.run_night(ctx)


def history(home: Path, url: str | None, day: str) -> pd.DataFrame:
    store = Store.open(url, home)
    with store.engine.connect() as conn:
        batches = store.visible_batches(conn, "entities", day)
    rows = store.read_batches(batches)
    store.engine.dispose()
    out = rows.reindex(columns=CONTENT).astype("string")
    return out.sort_values(CONTENT, ignore_index=True)


def file_row(home: Path, url: str | None, run_id: str, path: str) -> dict:
    store = Store.open(url, home)
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(landed_files).where(
                (landed_files.c.run_id == run_id) & (landed_files.c.path == path)
            )
        ).first()
    store.engine.dispose()
    return dict(row._mapping)


def current_index(home: Path, url: str | None) -> dict | None:
    store = Store.open(url, home)
    with store.engine.connect() as conn:
        row = snapshot_index.current(conn, "samr", "register")
    store.engine.dispose()
    return row


def gate_rows(home: Path, url: str | None, run_id: str) -> pd.DataFrame:
    store = Store.open(url, home)
    with store.engine.connect() as conn:
        g = pd.read_sql(
            sa.text("select * from gate_results where run_id = :r"), conn, params={"r": run_id}
        )
    store.engine.dispose()
    return g


@pytest.fixture(scope="module")
def worlds(made, snapshot_registry, tmp_path_factory):
    """The same three nights twice: the register as snapshots (registry declares it), and the
    same changes as increments (the registry as shipped)."""
    out = {}
    for world in ("snapshot", "increment"):
        root = tmp_path_factory.mktemp(world)
        landing, home = root / "landing", root / "home"
        shutil.copytree(made, landing)
        out[world] = {"landing": landing, "home": home, "nights": [], "histories": []}
    mp = pytest.MonkeyPatch()
    reg = first_register(made)
    try:
        for i, day in enumerate([FIRST, *NIGHTS[:2]]):
            if i:
                reg, increment = changed(reg, i)
            for world, w in out.items():
                if world == "snapshot":
                    mp.setattr(providers, "PROVIDERS_FILE", snapshot_registry)
                    if i:
                        deliver(w["landing"], made, day, reg)
                        if i == 1:  # a night that dies after its ingest, then runs again
                            ctx = pipeline.RunContext(
                                as_of=day, landing=w["landing"], home=w["home"]
                            )
                            w["crashed"] = pipeline.run_night(ctx, steps=("ingest",))
                else:
                    mp.setattr(providers, "PROVIDERS_FILE", CONFIG_DIR / "providers.yaml")
                    if i:
                        deliver(w["landing"], made, day, increment)
                w["nights"].append(night(w["home"], w["landing"], day))
                w["histories"].append(history(w["home"], None, day))
    finally:
        mp.undo()
    out["registers"] = reg
    return out


def test_a_snapshot_stores_the_history_of_the_same_increment(worlds):
    s, i = worlds["snapshot"], worlds["increment"]
    for n, (a, b) in enumerate(zip(s["nights"], i["nights"], strict=True)):
        assert a["status"] == b["status"] == "published", (n, a.get("error"), b.get("error"))
    for a, b in zip(s["histories"], i["histories"], strict=True):
        pd.testing.assert_frame_equal(a, b)
    gone = s["histories"][-1]
    assert (gone["entity_status"] == WITHDRAWN_STATUS).sum() == 4  # two per night, recorded
    assert s["nights"][-1]["output_sha256"] == i["nights"][-1]["output_sha256"]


def test_unchanged_rows_are_counted_excluded_and_the_rest_staged(worlds):
    s = worlds["snapshot"]
    for n, day in enumerate(NIGHTS[:2], start=1):
        path = REGISTER.format(day.replace("-", ""))
        f = file_row(s["home"], None, s["nights"][n]["run_id"], path)
        received = f["received"]
        assert f["status"] == "stored"
        assert (f["accepted"], f["withdrawn"], f["quarantined"]) == (6, 2, 0)
        assert f["excluded"] == received - 4  # two new and two changed staged
        assert "snapshot_unchanged" in f["message"]
        g = gate_rows(s["home"], None, s["nights"][n]["run_id"]).set_index(["gate", "scope"])
        assert g.loc[("snapshot_unchanged", path), "observed"] == str(received - 4)
        assert bool(g.loc[("snapshot_guard", path), "passed"])
        assert bool(g.loc[("reconciliation", path), "passed"])


def test_a_night_run_again_diffs_against_the_same_snapshot(worlds):
    s = worlds["snapshot"]
    assert s["crashed"]["status"] != "published"
    # The crashed ingest moved nothing: the night run again found the first night's index and
    # made the same diff (the history equals the increment's, above).
    f = file_row(s["home"], None, s["nights"][1]["run_id"], REGISTER.format("20260701"))
    assert (f["accepted"], f["withdrawn"]) == (6, 2)


MORE = ["2026-07-03", "2026-07-06", "2026-07-07", "2026-07-08", "2026-07-09"]
WAIVER = {
    "gate": "snapshot_guard",
    "scope": REGISTER.format("20260709"),
    "approver": "王科长",
    "reason": "the regulator confirmed the mass deregistration of 2026-07-09",
}


@pytest.fixture(scope="module")
def guarded(worlds, made, snapshot_registry):
    """The snapshot world goes on: an empty snapshot (run twice), a truncated one, one dropping
    most rows, a good one, and one dropping most rows that an operator then releases."""
    w, reg = worlds["snapshot"], worlds["registers"]
    out = {"index_before": current_index(w["home"], None)}
    cut = reg.to_csv(index=False).rstrip("\n")
    bad = {
        MORE[0]: reg.iloc[0:0],
        MORE[1]: cut[: len(cut) - 5].encode(),  # the last row cut inside a field, no newline
        MORE[2]: reg.iloc[: len(reg) // 10],
    }
    mp = pytest.MonkeyPatch()
    mp.setattr(providers, "PROVIDERS_FILE", snapshot_registry)
    try:
        for day, register in bad.items():
            deliver(w["landing"], made, day, register)
            out[day] = night(w["home"], w["landing"], day)
            out[day, "index"] = current_index(w["home"], None)
            out[day, "guard"] = _guard(w["home"], out[day]["run_id"], _path(day))
        out["again"] = night(w["home"], w["landing"], MORE[0])
        out["again", "guard"] = _guard(w["home"], out["again"]["run_id"], _path(MORE[0]))
        out["again", "index"] = current_index(w["home"], None)
        good = pd.concat([reg, reg.iloc[[7]].assign(**{reg.columns[0]: _usccs(9, 1)})])
        deliver(w["landing"], made, MORE[3], good)
        out[MORE[3]] = night(w["home"], w["landing"], MORE[3])
        out[MORE[3], "index"] = current_index(w["home"], None)
        deliver(w["landing"], made, MORE[4], good.iloc[: len(good) // 10])
        out[MORE[4], "held"] = night(w["home"], w["landing"], MORE[4])
        out[MORE[4]] = night(w["home"], w["landing"], MORE[4], waivers=(WAIVER,))
    finally:
        mp.undo()
    out["good_rows"] = len(good)
    return out


def _path(day: str) -> str:
    return REGISTER.format(day.replace("-", ""))


def _guard(home: Path, run_id: str, path: str) -> pd.Series:
    g = gate_rows(home, None, run_id)
    return g[(g["gate"] == "snapshot_guard") & (g["scope"] == path)].iloc[0]


@pytest.mark.parametrize(
    "day, why",
    [
        (MORE[0], "the snapshot is empty"),
        (MORE[1], "the snapshot is truncated"),
        (MORE[2], "the snapshot drops"),
    ],
)
def test_a_bad_snapshot_is_held_and_the_previous_stays_in_force(worlds, guarded, day, why):
    w = worlds["snapshot"]
    s = guarded[day]
    path = REGISTER.format(day.replace("-", ""))
    assert s["status"] == "gate_failed"
    g = guarded[day, "guard"]
    assert not bool(g["passed"]) and bool(g["hard"])
    assert why in g["message"] and "held for a person" in g["message"]
    assert "previous snapshot stays in force" in g["message"]
    assert file_row(w["home"], None, s["run_id"], path)["status"] == "held"
    # nothing applied: the index of night three is still the one in force
    assert guarded[day, "index"] == guarded["index_before"]


def test_a_held_night_run_again_is_held_again_the_same_way(worlds, guarded):
    a, b = guarded[MORE[0]], guarded["again"]
    assert a["status"] == b["status"] == "gate_failed"
    ga, gb = guarded[MORE[0], "guard"], guarded["again", "guard"]
    assert (ga["observed"], ga["message"]) == (gb["observed"], gb["message"])
    assert guarded["again", "index"] == guarded["index_before"]


def test_the_next_good_snapshot_diffs_against_the_last_accepted_one(worlds, guarded):
    w = worlds["snapshot"]
    s = guarded[MORE[3]]
    assert s["status"] == "published", s.get("error")
    f = file_row(w["home"], None, s["run_id"], REGISTER.format("20260708"))
    # against night three's register: one new row, nothing vanished
    assert (f["accepted"], f["withdrawn"], f["excluded"]) == (1, 0, guarded["good_rows"] - 1)
    g = gate_rows(w["home"], None, s["run_id"])
    superseded = g[g["gate"] == "snapshot_superseded"]
    assert set(superseded["scope"]) == {REGISTER.format(d.replace("-", "")) for d in MORE[:3]}
    assert guarded[MORE[3], "index"]["run_id"] == s["run_id"]


def test_an_operator_releases_a_held_snapshot_with_a_waiver(worlds, guarded):
    w = worlds["snapshot"]
    held, released = guarded[MORE[4], "held"], guarded[MORE[4]]
    assert held["status"] == "gate_failed" and released["status"] == "published"
    f = file_row(w["home"], None, released["run_id"], REGISTER.format("20260709"))
    kept = guarded["good_rows"] // 10
    assert f["withdrawn"] == guarded["good_rows"] - kept
    assert f["excluded"] == kept
    g = _guard(w["home"], released["run_id"], REGISTER.format("20260709"))
    assert g["waiver"].startswith("WAIVED by 王科长")
    assert current_index(w["home"], None)["run_id"] == released["run_id"]
    ent = history(w["home"], None, MORE[4]).sort_values("known_from", kind="stable")
    latest = ent.drop_duplicates("uscc", keep="last")
    gone = latest[latest["known_from"] == MORE[4]]
    assert len(gone) == f["withdrawn"] and (gone["entity_status"] == WITHDRAWN_STATUS).all()


def test_a_snapshot_with_the_bytes_of_an_earlier_one_is_diffed_not_skipped(guarded):
    # The 07-09 register holds the same first rows as the 07-07 one, byte for byte (stored when
    # 07-08 superseded it): for a snapshot feed that is the list again, judged against the one
    # in force (here: held, most of it gone), never "same content, no new rows".
    assert guarded[MORE[4], "held"]["status"] == "gate_failed"


@pytest.mark.postgres
def test_on_postgresql_the_index_settles_only_with_a_night_that_stores(
    made, snapshot_registry, pg_url, tmp_path, monkeypatch
):
    monkeypatch.setattr(providers, "PROVIDERS_FILE", snapshot_registry)
    landing, home = tmp_path / "landing", tmp_path / "home"
    shutil.copytree(made, landing)
    assert night(home, landing, FIRST, pg_url)["status"] == "published"
    first = current_index(home, pg_url)
    assert first["rows"] == len(first_register(made))  # a first snapshot loads whole
    reg, _ = changed(first_register(made), 1)
    deliver(landing, made, NIGHTS[0], reg)
    s = night(home, landing, NIGHTS[0], pg_url)
    assert s["status"] == "published", s.get("error")
    f = file_row(home, pg_url, s["run_id"], _path(NIGHTS[0]))
    assert (f["accepted"], f["withdrawn"], f["excluded"]) == (6, 2, len(reg) - 4)
    deliver(landing, made, NIGHTS[1], reg.iloc[:3])
    held = night(home, landing, NIGHTS[1], pg_url)
    assert held["status"] == "gate_failed"
    assert current_index(home, pg_url)["run_id"] == s["run_id"]
    ent = history(home, pg_url, NIGHTS[1])
    assert (ent["entity_status"] == WITHDRAWN_STATUS).sum() == 2
