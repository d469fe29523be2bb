"""The hostile corpus, file by file (the reader's verdict) and as one night (a file is the unit of
failure: the night goes on, every file is logged with its reason, no row is lost, nothing
personal or secret leaks into a message or a published file)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import hostile_corpus
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import run_cli

from scoring.intake.ingest import read_file
from scoring.intake.readers import UnusableFile

AS_OF = "2026-03-31"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from scoring.world.province import write_deliveries

    root = tmp_path_factory.mktemp("hostile")
    write_deliveries(root / "province", AS_OF, n_entities=400, seed=11, defect_rate=0.0)
    landing = root / "province" / "landing"
    template_csv = (landing / "samr" / "20260331_penalty.csv").read_bytes()
    template_xlsx = (landing / "ema" / "20260331_penalty.xlsx").read_bytes()
    cases = hostile_corpus.build(landing, template_csv, template_xlsx, root / "outside")
    # Individual businesses named with their owner's ID or mobile number (published through the name).
    reg = landing / "samr" / "20260331_register.csv"
    lines = reg.read_text(encoding="utf-8").splitlines(keepends=True)
    for i, extra in ((1, "230102198001015018"), (2, "13812345678")):
        fields = lines[i].split(",")
        fields[1] = fields[1] + extra
        lines[i] = ",".join(fields)
    reg.write_text("".join(lines), encoding="utf-8")
    return {"root": root, "landing": landing, "cases": cases}


def _file_cases(corpus):
    return [
        c
        for c in corpus["cases"]
        if (corpus["landing"] / c.rel).is_file() and not (corpus["landing"] / c.rel).is_symlink()
    ]


def test_each_hostile_file_gets_its_one_expected_verdict(corpus):
    wrong = []
    for case in _file_cases(corpus):
        path = corpus["landing"] / case.rel
        try:
            raw = read_file(path)
            got = ("read", dict(Counter(raw.bad_rows["reason"])))
            if case.rows is not None and raw.received != case.rows:
                wrong.append((case.name, f"received {raw.received}, sent {case.rows}"))
        except UnusableFile as exc:
            got = ("rejected", exc.code)
            assert hostile_corpus.SECRET[:12] not in str(exc) and "s3cr3t" not in str(exc), (
                case.name
            )
            assert all(ch.isprintable() for ch in str(exc)), case.name
        if got != case.outcome:
            wrong.append((case.name, got, case.outcome))
    assert not wrong


def test_messages_name_the_problem(corpus):
    def reject(name):
        case = next(c for c in corpus["cases"] if c.name == name)
        with pytest.raises(UnusableFile) as info:
            read_file(corpus["landing"] / case.rel)
        return str(info.value)

    assert "UTF-16" in reject("utf16_bom") and "UTF-16" in reject("utf16le_no_bom")
    nul_file = corpus["landing"] / next(c.rel for c in corpus["cases"] if c.name == "nul_after_8k")
    at = nul_file.read_bytes().find(b"\x00")
    assert at > 8192 and f"NUL byte at byte {at:,} (line " in reject("nul_after_8k")
    assert "truncated" in reject("truncated_inside_character")
    assert "repeats column 1" in reject("duplicate_header")
    assert "first line is blank" in reject("first_line_empty")
    assert "or more columns, beyond the limit 512" in reject("million_column_header")
    assert "zip bomb" in reject("xlsx_zip_bomb")
    shadow = reject("shadow_like")
    assert "s3cr3t" not in shadow and len(shadow) < 120
    assert "\x1b" not in reject("escape_sequences_header")


def test_unterminated_quote_costs_one_line_not_the_rest(corpus):
    case = next(c for c in corpus["cases"] if c.name == "unterminated_quote")
    raw = read_file(corpus["landing"] / case.rel)
    assert raw.bad_rows[["line_no", "reason"]].values.tolist() == [[5, "unterminated_quote"]]
    assert raw.received == case.rows and len(raw.rows) == case.rows - 1
    assert 5 not in set(raw.rows["line_no"]) and {4, 6} <= set(raw.rows["line_no"])


def test_rows_beyond_the_declared_dimension_are_read(corpus):
    import io

    import openpyxl

    case = next(c for c in corpus["cases"] if c.name == "xlsx_dimension_lies")
    data = (corpus["landing"] / case.rel).read_bytes()
    sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).worksheets[0]
    sent = (
        sum(1 for row in sheet.iter_rows(values_only=True) if any(v is not None for v in row)) - 1
    )
    assert sent > 2  # more rows than the dimension A1:M3 declares
    assert read_file(corpus["landing"] / case.rel).received == sent


@pytest.fixture(scope="module")
def hostile_night(corpus, tmp_path_factory):
    home = tmp_path_factory.mktemp("hostile_home")
    p = run_cli(
        "run", "--as-of", AS_OF, "--landing", str(corpus["landing"]), "--home", str(home), "--json"
    )
    return {"proc": p, "home": home}


def _db(home: Path):
    from scoring.history.store import Store

    return Store.open(None, home)


def test_a_hostile_night_goes_on_and_logs_every_file(corpus, hostile_night):
    p = hostile_night["proc"]
    assert "Traceback" not in p.stderr and p.returncode == 0, p.stderr[-3000:]
    summary = json.loads(p.stdout)
    assert summary["status"] == "published"
    store = _db(hostile_night["home"])
    with store.engine.connect() as conn:
        files = pd.read_sql(sa.text("select * from landed_files"), conn).set_index("path")
        quar = pd.read_sql(sa.text("select path, line_no, reasons from quarantine"), conn)
    problems = []
    landing_problems = {(p["kind"], p["path"]) for p in summary.get("landing_problems", [])}
    for case in corpus["cases"]:
        if case.outcome[0] == "rejected" and case.outcome[1] in ("symlink", "not_a_file"):
            # never entered nor read: reported as a landing problem, with its reason
            if (case.outcome[1], case.rel) not in landing_problems or case.rel in files.index:
                problems.append((case.name, "landing problem not reported"))
            continue
        if case.rel not in files.index:
            problems.append((case.name, "not logged"))
            continue
        row = files.loc[case.rel]
        assert hostile_corpus.SECRET[:12] not in str(row["message"]) and "s3cr3t" not in str(
            row["message"]
        )
        if case.outcome[0] == "rejected":
            if (row["status"], row["reject_code"]) != ("rejected", case.outcome[1]):
                problems.append((case.name, row["status"], row["reject_code"], case.outcome))
            continue
        if row["status"] not in ("stored",):
            problems.append((case.name, row["status"], row["message"]))
        # every received row is accepted, quarantined or excluded (a resend of a record an earlier
        # file of the night brought), and every row sent was received
        excluded = int(row["excluded"]) if pd.notna(row.get("excluded")) else 0
        if int(row["received"]) != int(row["accepted"]) + int(row["quarantined"]) + excluded:
            problems.append((case.name, "rows lost", dict(row)))
        if case.rows is not None and int(row["received"]) != case.rows:
            problems.append((case.name, "received", int(row["received"]), case.rows))
        if case.extra.get("bad_value_line"):
            got = quar[
                (quar["path"] == case.rel) & (quar["line_no"] == case.extra["bad_value_line"])
            ]["reasons"].tolist()
            if got != ["bad_value"]:
                problems.append((case.name, "reasons", got))
    assert not problems


def test_nothing_outside_the_landing_folder_is_read(corpus, hostile_night):
    store = _db(hostile_night["home"])
    with store.engine.connect() as conn:
        paths = [r[0] for r in conn.execute(sa.text("select path from landed_files"))]
        raw = " ".join(str(r[0]) for r in conn.execute(sa.text("select raw_json from quarantine")))
    assert not [p for p in paths if p.startswith("linked_provider/")]
    assert "s3cr3t" not in raw


def _json_strings(doc):
    """Every value of a JSON document except content hashes (hex digits are not identifiers).
    Values are joined with '|', which no number is written across (a space or a dot would join
    one value's digits to the next's)."""
    import re

    if isinstance(doc, dict):
        for v in doc.values():
            yield from _json_strings(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _json_strings(v)
    elif not (isinstance(doc, str) and re.fullmatch(r"[0-9a-f]{64}", doc)):
        yield str(doc)


USCC_HEADERS = ("uscc", "统一社会信用代码")  # the machine and the Chinese header


def test_no_identifier_is_published_in_free_text(hostile_night):
    from scoring.publication.free_text import scan_text

    files = [p for p in (hostile_night["home"] / "outbox").rglob("*") if p.is_file()]
    assert files
    leaks = []
    for path in files:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
            text = " | ".join(
                df[c].astype(str).str.cat(sep=" | ") for c in df.columns if c != "uscc"
            )
        elif path.suffix == ".csv":
            enc = "gb18030" if path.read_bytes()[:3] != b"\xef\xbb\xbf" else "utf-8-sig"
            df = pd.read_csv(path, dtype=str, encoding=enc, keep_default_na=False)
            text = " | ".join(df[c].str.cat(sep=" | ") for c in df.columns if c not in USCC_HEADERS)
        elif path.suffix == ".xlsx":
            df = pd.read_excel(path, dtype=str).fillna("")
            text = " | ".join(df[c].str.cat(sep=" | ") for c in df.columns if c not in USCC_HEADERS)
        elif path.suffix == ".json":
            # Values kept apart: three adjacent counts ("198", "2195", "1779") are not a phone.
            text = " | ".join(_json_strings(json.loads(path.read_text(encoding="utf-8"))))
        else:
            text = path.read_text(encoding="utf-8", errors="replace")
        leaks += [(path.name, hit) for hit in scan_text(text)]
    assert not leaks
    hlj = pd.read_parquet(
        next((hostile_night["home"] / "outbox" / "hlj-samr").glob("nightly-*/results.parquet"))
    )
    assert hlj["name"].str.contains("********5018", regex=False).any()
    assert hlj["name"].str.contains("138****5678", regex=False).any()


def _xlsx(rows: int, strings: int, used: int | None = None) -> bytes:
    """A minimal workbook: `rows` rows of two shared-string cells, and `strings` shared strings of
    which the sheet uses the first `used`."""
    import io
    import zipfile

    used = 2 * rows if used is None else used
    cells = "".join(
        f'<row r="{r + 1}"><c r="A{r + 1}" t="s"><v>{(2 * r) % used}</v></c>'
        f'<c r="B{r + 1}" t="s"><v>{(2 * r + 1) % used}</v></c></row>'
        for r in range(rows)
    )
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    parts = {
        "_rels/.rels": f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="r1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook {ns} xmlns:r="{rel}"><sheets><sheet name="s" sheetId="1" r:id="r1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="r1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="r2" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": f"<worksheet {ns}><sheetData>{cells}</sheetData></worksheet>",
        "xl/sharedStrings.xml": f"<sst {ns}>"
        + "".join(f"<si><t>s{i}</t></si>" for i in range(strings))
        + "</sst>",
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in parts.items():
            z.writestr(name, text)
    return out.getvalue()


def test_unused_shared_strings_are_refused_before_they_are_parsed():
    import time

    from scoring.intake.xlsx import read_xlsx

    header, records = read_xlsx(_xlsx(50, 100))[:2]
    assert header == ["s0", "s1"] and len(records) == 49  # a normal file reads
    bomb = _xlsx(50, 600_000, used=100)
    start = time.monotonic()
    with pytest.raises(UnusableFile, match="shared strings") as info:
        read_xlsx(bomb)
    assert info.value.code == "too_large" and time.monotonic() - start < 5


@pytest.mark.parametrize(
    "text,match",
    [
        # "billion laughs": nine levels of ten aliases each
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n"
                for i in range(8)
            ),
            "expands to more than",
        ),
        ("k: &k [1]\n" + "".join(f"k{i}: *k\n" for i in range(200)), "aliases"),
        ("a: [" * 5000 + "]" * 5000, "not a YAML document"),
        ("a: b\n\xff\xfe", "not a YAML document"),
    ],
    ids=["billion-laughs", "many-aliases", "deep-nesting", "not-utf8"],
)
def test_configuration_yaml_is_read_within_limits(tmp_path, text, match):
    from scoring.common.config import load_document

    path = tmp_path / "policy.yaml"
    path.write_bytes(
        text.encode("utf-8", errors="surrogateescape")
        if "\xff" not in text
        else text.encode("latin-1")
    )
    with pytest.raises(ValueError, match=match):
        load_document(path)


def test_an_oversized_configuration_file_is_refused_unread(tmp_path):
    from scoring.common import config

    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: " + b"x" * (config.MAX_DOCUMENT_BYTES + 10))
    with pytest.raises(ValueError, match="larger than"):
        config.load_document(path)


def test_lf_cr_line_ends_are_one_line_end_each(corpus):
    """A file written with LF CR (the wrong way round) reads as the same rows, no blank ones."""
    from scoring.intake import ingest

    data = (corpus["landing"] / "samr" / "20260331_penalty.csv").read_bytes()
    lf = data.replace(b"\r\n", b"\n")
    lf_cr = lf.replace(b"\n", b"\n\r")
    plain = ingest.read_bytes(lf, "20260331_penalty.csv", "samr")
    swapped = ingest.read_bytes(lf_cr, "20260331_penalty.csv", "samr")
    assert swapped.received == plain.received > 0
    assert len(swapped.bad_rows) == len(plain.bad_rows) == 0
