"""Publication: scoped (enforced by PostgreSQL, not Python), masked, atomic."""

import csv
import io
import json
import re
import shutil

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import AS_OF, run_cli

from scoring.common import codes
from scoring.publication.access import role_name, view_name
from scoring.publication.labels import header
from scoring.publication.masking import mask_id_number, mask_name, mask_phone
from scoring.publication.publish import load_agencies, neutralise_formulas


def test_masking_rules():
    assert mask_name(pd.Series(["张三", "欧阳娜娜"])).tolist() == ["张*", "欧***"]
    assert mask_id_number(pd.Series(["230102198001010129"])).tolist() == ["230102********0129"]
    assert mask_phone(pd.Series(["13812345678"])).tolist() == ["138****5678"]


def test_formula_cells_are_neutralised():
    df = pd.DataFrame({"a": ["=1+1", "+SUM(A1)", "-2", "@x", "ok", None], "n": [1, 2, 3, 4, 5, 6]})
    out = neutralise_formulas(df)
    assert out["a"].tolist()[:5] == ["'=1+1", "'+SUM(A1)", "'-2", "'@x", "ok"]
    assert df["a"].iloc[0] == "=1+1"  # the input is not mutated


def test_agencies_cli():
    p = run_cli("agencies", "--json")
    rows = json.loads(p.stdout)
    assert p.returncode == 0 and len(rows) >= 10
    domains = {r["domain"] for r in rows}
    assert {
        "market_regulation",
        "tax",
        "ecology_environment",
        "housing_construction",
        "transport",
        "health",
        "emergency_management",
    } <= domains
    assert all({"id", "name", "scope"} <= set(r) for r in rows)


def _cells(path):
    if path.suffix == ".csv":
        data = path.read_bytes()
        text = (
            data.decode("utf-8-sig") if data.startswith(b"\xef\xbb\xbf") else data.decode("gb18030")
        )
        return [c for row in csv.reader(io.StringIO(text)) for c in row]
    if path.suffix == ".parquet":
        return [str(v) for v in pd.read_parquet(path).astype(str).to_numpy().ravel()]
    if path.suffix == ".xlsx":
        return [str(v) for v in pd.read_excel(path, dtype=str).fillna("").to_numpy().ravel()]
    return re.findall(r'"([^"]*)"', path.read_text(encoding="utf-8"))


def test_no_unmasked_personal_data_or_formula_cells_in_any_published_artifact(sqlite_run):
    files = [
        p for p in (sqlite_run["home"] / "outbox").rglob("*") if p.is_file() and p.name != "CURRENT"
    ]
    assert files
    id_like = re.compile(r"\d{17}[\dX]")
    phone_like = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
    for path in files:
        cells = _cells(path)
        ids = [m for c in cells for m in id_like.findall(c)]
        ids = [
            i for i, is_code in zip(ids, codes.valid_uscc(ids)) if not is_code
        ]  # all-digit USCCs of 12… units
        assert not codes.valid_id_number(ids).any(), path
        assert not any(phone_like.search(c) for c in cells), path
        if path.suffix == ".csv":
            # A plain negative number (-70.0) is a number to Excel/WPS, not a formula; anything else
            # starting with = + - @ must have been neutralised.
            plain_number = re.compile(r"-\d+(\.\d+)?")
            assert not any(
                c[:1] in ("=", "+", "-", "@") and not plain_number.fullmatch(c) for c in cells
            ), path
    sample = pd.read_csv(
        next(p for p in files if p.name == "results.csv"), encoding="utf-8-sig", nrows=50, dtype=str
    )
    assert sample[header("legal_rep_id_number", "zh")].str.fullmatch(r"\d{6}\*{8}[\dX]{4}").all()


def test_each_agency_file_holds_only_its_scope(sqlite_run):
    for agency in load_agencies():
        f = (
            sqlite_run["home"]
            / "outbox"
            / agency["id"]
            / sqlite_run["summary"]["run_id"]
            / "results.parquet"
        )
        df = pd.read_parquet(f)
        assert df["division_code"].astype(str).str.startswith(tuple(agency["divisions"])).all()
        if agency["industries"]:
            assert df["industry"].isin(agency["industries"]).all()


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def pg_published(province, pg_server_url, tmp_path_factory):
    """A published demo run in its own PostgreSQL database (kept for the module)."""
    import uuid

    name = f"credit_pub_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    home = tmp_path_factory.mktemp("pg_pub")
    p = run_cli(
        "run",
        "--as-of",
        AS_OF,
        "--landing",
        str(province / "landing"),
        "--home",
        str(home),
        "--db",
        url,
        "--json",
    )
    assert p.returncode == 0, p.stderr[-2000:]
    yield {"url": url, "home": home, "summary": json.loads(p.stdout)}
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _as_role(url, role, sql):
    """One agency session: the statement, then commit (as a client in autocommit mode would)."""
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            c.execute(sa.text(f"SET ROLE {role}"))
            rows = c.execute(sa.text(sql)).all()
            c.commit()
            return rows
    finally:
        eng.dispose()


@pytest.mark.postgres
def test_agency_role_sees_only_its_scope(pg_published):
    url = pg_published["url"]
    hrb = _as_role(url, role_name("hrb-samr"), "select division_code from agency_current")
    assert hrb and all(r[0].startswith("2301") for r in hrb)
    eng = sa.create_engine(url)
    with eng.connect() as c:
        expected = c.execute(
            sa.text("select count(*) from entity_results where division_code like '2301%'")
        ).scalar()
    eng.dispose()
    assert len(hrb) == expected
    eco = _as_role(url, role_name("hlj-eco"), "select industry from agency_current")
    assert eco and {r[0] for r in eco} <= {"B", "C", "D"}
    own_view = _as_role(url, role_name("hrb-samr"), f"select count(*) from {view_name('hrb-samr')}")
    assert own_view[0][0] == expected


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        f"select * from {view_name('dq-samr')}",  # another agency's view
        "select * from quarantine",  # raw provider data
        "select manifest_json from runs",  # columns not granted
        "select * from landed_files",
        "select count(*) from entity_results",  # the table itself: only through the views
        "set row_security = off; select count(*) from entity_results",
        "create function leak() returns setof entity_results language sql security definer as "
        "'select * from entity_results'",
    ],
)
def test_agency_role_cannot_get_around_its_scope(pg_published, sql):
    with pytest.raises(sa.exc.DBAPIError):
        rows = _as_role(pg_published["url"], role_name("hrb-samr"), sql)
        # row_security=off must refuse rather than silently filter; anything returned is a failure.
        assert not rows or all(str(r[0]).startswith("2301") for r in rows)
        raise sa.exc.DBAPIError("statement", {}, Exception("returned only in-scope rows"))


@pytest.mark.postgres
def test_history_view_stays_scoped(pg_published):
    rows = _as_role(
        pg_published["url"],
        role_name("lindian-samr"),
        "select distinct division_code from agency_history",
    )
    assert rows and {r[0] for r in rows} == {"230623"}


@pytest.mark.postgres
def test_killing_publish_midway_leaves_the_previous_run_visible(province, pg_url, tmp_path):
    from scoring.world.province import write_deliveries

    landing_root = tmp_path / "prov"
    shutil.copytree(province, landing_root)
    home = tmp_path / "home"
    day1 = run_cli(
        "run",
        "--as-of",
        AS_OF,
        "--landing",
        str(landing_root / "landing"),
        "--home",
        str(home),
        "--db",
        pg_url,
        "--json",
    )
    assert day1.returncode == 0, day1.stderr[-2000:]
    write_deliveries(landing_root, "2026-07-31", n_entities=3000, seed=7, defect_rate=0.02)
    day2 = run_cli(
        "run",
        "--as-of",
        "2026-07-31",
        "--landing",
        str(landing_root / "landing"),
        "--home",
        str(home),
        "--db",
        pg_url,
        "--json",
        env={"CREDIT_FAULT_INJECT": "publish:3"},
    )
    assert day2.returncode != 0 and "fault injected" in day2.stderr
    current = _as_role(pg_url, role_name("hlj-samr"), "select distinct run_id from agency_current")
    assert current == [("nightly-20260630",)]
    outbox = home / "outbox"
    assert not list(outbox.rglob("nightly-20260731*")) and not list(outbox.rglob(".*tmp"))
    assert all((d / "CURRENT").read_text().startswith("nightly-20260630") for d in outbox.iterdir())
    retry = run_cli(
        "run",
        "--as-of",
        "2026-07-31",
        "--landing",
        str(landing_root / "landing"),
        "--home",
        str(home),
        "--db",
        pg_url,
        "--json",
    )
    assert retry.returncode == 0, retry.stderr[-2000:]
    current = _as_role(pg_url, role_name("hlj-samr"), "select distinct run_id from agency_current")
    assert current == [("nightly-20260731",)]
    assert all((d / "CURRENT").read_text().startswith("nightly-20260731") for d in outbox.iterdir())


def _read_log(url):
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            return [
                dict(r._mapping)
                for r in c.execute(
                    sa.text(
                        "select agency_id, db_role, channel, query from read_log order by read_id"
                    )
                )
            ]
    finally:
        eng.dispose()


@pytest.mark.postgres
def test_every_agency_read_is_registered_once_and_the_log_is_out_of_its_reach(pg_published):
    url, role = pg_published["url"], role_name("hrb-samr")
    before = len(_read_log(url))
    statements = [
        f"select count(*) from {view_name('hrb-samr')}",  # own view (two views deep)
        "select * from agency_current where uscc = 'no such entity'",  # finds nothing
        "select division_code from agency_history",
    ]  # every run published
    for sql in statements:
        _as_role(url, role, sql)
    new = _read_log(url)[before:]
    assert [r["query"] for r in new] == statements
    assert {(r["agency_id"], r["db_role"], r["channel"]) for r in new} == {
        ("hrb-samr", role, "sql")
    }
    for sql in [
        "select * from read_log",
        "delete from read_log",
        "update read_log set query = ''",
        f"insert into read_log (agency_id, channel, db_role) values ('dq-samr', 'sql', '{role_name('dq-samr')}')",
    ]:
        with pytest.raises(sa.exc.DBAPIError):
            _as_role(url, role, sql)
    review = run_cli(
        "reads", "--db", url, "--home", str(pg_published["home"]), "--agency", "hrb-samr", "--json"
    )
    assert review.returncode == 0, review.stderr[-2000:]
    out = json.loads(review.stdout)
    assert [r["query"] for r in out["reads"]][-3:] == statements
    assert {d["agency_id"] for d in out["deliveries"]} == {"hrb-samr"} and all(
        d["delivered_at"] for d in out["deliveries"]
    )
