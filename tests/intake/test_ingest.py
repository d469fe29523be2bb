"""Bad input gets a clear error or a quarantine row with a reason; nothing crashes or vanishes."""

import json
import shutil

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import AS_OF, run_cli

from scoring.intake import ingest
from scoring.intake.layouts import CREDIT_RECORD, PENALTY

HEADER = ",".join(CREDIT_RECORD.standard_headers())
ROW = "COMMITMENT,哈尔滨市某某商贸有限公司,法人及非法人组织,91330100799655058B,,张三,HLJ-1,2026-05-03,2027-05-03,,哈尔滨市发展和改革局,省信用办,,,"


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize(
    "encoding,label", [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gb18030", "gb18030")]
)
def test_encodings_are_detected(tmp_path, encoding, label):
    p = _write(tmp_path / "20260630_credit_record.csv", f"{HEADER}\n{ROW}\n", encoding)
    raw = ingest.read_file(p)
    assert raw.encoding == label and raw.layout.id == "credit_record" and len(raw.rows) == 1
    assert raw.rows["subject_name"].iloc[0] == "哈尔滨市某某商贸有限公司"


def test_headers_match_tolerantly(tmp_path):
    # Full-width brackets, stray spaces and an older alias still map to the canonical columns.
    header = HEADER.replace("金额（元）", "金额 (元)").replace("文书编号", " 文书编号 ")
    raw = ingest.read_file(_write(tmp_path / "x.csv", f"{header}\n{ROW}\n"))
    assert raw.layout.id == "credit_record" and not raw.missing_required


@pytest.mark.parametrize(
    "name,content,code",
    [
        ("empty.csv", b"", "empty"),
        ("binary.csv", b"\x00\x01\x02PNG\x00" * 50, "binary"),
        ("latin.csv", "名称\n".encode()[:-2] + b"\xff\xfe\xfa\n", "bad_encoding"),
        ("unknown.csv", b"foo,bar\n1,2\n", "unknown_layout"),
        ("fake.xlsx", b"not a zip at all", "malformed"),
        ("bad name;rm -rf.csv", f"{HEADER}\n{ROW}\n".encode(), "bad_file_name"),
        (".hidden.csv", f"{HEADER}\n{ROW}\n".encode(), "bad_file_name"),
    ],
)
def test_unusable_files_get_a_one_line_reason(tmp_path, name, content, code):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ingest.UnusableFile) as exc:
        ingest.read_file(p)
    assert exc.value.code == code
    assert "\n" not in str(exc.value)


def test_truncated_zip_is_rejected(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.append(CREDIT_RECORD.standard_headers())
    full = tmp_path / "full.xlsx"
    wb.save(full)
    cut = tmp_path / "cut.xlsx"
    cut.write_bytes(full.read_bytes()[:400])
    with pytest.raises(ingest.UnusableFile) as exc:
        ingest.read_file(cut)
    assert exc.value.code in ("truncated", "malformed")


def test_xlsx_with_a_cell_far_out_is_rejected_by_its_actual_columns(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(CREDIT_RECORD.standard_headers())
    ws.cell(row=1_048_576, column=16_384, value="x")
    p = tmp_path / "bomb.xlsx"
    wb.save(p)
    with pytest.raises(ingest.UnusableFile) as exc:
        ingest.read_file(p, max_cells=1_000_000)
    assert exc.value.code == "too_many_columns"


def test_truncated_csv_and_bad_lines_are_quarantined_not_lost(tmp_path):
    text = f"{HEADER}\n{ROW}\n{ROW.replace('HLJ-1', 'HLJ-2')},extra,fields\n\n{ROW.replace('HLJ-1', 'HLJ-3')}\n{ROW[:40]}"
    raw = ingest.read_file(_write(tmp_path / "t.csv", text))
    assert raw.received == 5
    assert len(raw.rows) == 2
    assert sorted(raw.bad_rows["reason"]) == ["blank_row", "truncated_row", "wrong_field_count"]
    assert sorted(raw.rows["line_no"]) == [2, 5]


def test_dates_amounts_and_codes_are_normalised():
    d, bad = ingest.parse_dates(
        pd.Series(["2026-05-03", "2026/5/3", "20260503", "2026年5月3日", "", "31/02/2026"])
    )
    assert list(d.iloc[:4].dt.strftime("%Y-%m-%d")) == ["2026-05-03"] * 4
    assert list(bad) == [False, False, False, False, False, True]
    a, bad = ingest.parse_amounts(pd.Series(["1,234.50", "１２３", "", "abc"]))
    assert a.iloc[0] == 1234.5 and a.iloc[1] == 123 and pd.isna(a.iloc[2]) and bad.iloc[3]


# --------------------------------------------------------------------------- credit check


def test_check_cli_contract(province):
    f = province / "landing" / "samr" / "20260630_penalty.csv"
    p = run_cli("check", str(f), "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    for key in ("layout", "encoding", "received", "accepted", "quarantined", "reasons"):
        assert key in out
    assert out["layout"] == "sgs_penalty" and out["encoding"] == "utf-8-sig"
    assert out["received"] == out["accepted"] + out["quarantined"] and out["quarantined"] > 0


def test_check_exit_codes(tmp_path):
    unusable = _write(tmp_path / "u.csv", "foo,bar\n1,2\n")
    p = run_cli("check", str(unusable), "--json")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    # Missing a required column is a schema mismatch: a hard gate (exit 1).
    cols = [h for h in PENALTY.standard_headers() if h != "处罚类别"]
    row = ",".join("x" for _ in cols)
    schema = _write(tmp_path / "s.csv", ",".join(cols) + "\n" + row + "\n")
    p = run_cli("check", str(schema), "--json")
    # Without 处罚类别 the penalty signature is gone, so the layout is unknown: unusable (2) is right too.
    assert p.returncode in (1, 2)
    lic_cols = [h for h in CREDIT_RECORD.standard_headers() if h != "主体名称"]
    schema2 = _write(
        tmp_path / "s2.csv", ",".join(lic_cols) + "\n" + ",".join("x" for _ in lic_cols) + "\n"
    )
    p = run_cli("check", str(schema2), "--json")
    assert p.returncode == 1, p.stdout + p.stderr
    assert json.loads(p.stdout)["reasons"] == {"schema_mismatch": 1}


# --------------------------------------------------------------------------- a run with bad files


def test_run_with_empty_and_unreadable_files_reports_them(province, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(province / "landing", landing)
    (landing / "samr" / "20260629_extra.csv").write_bytes(b"")
    (landing / "eco" / "20260629_notes.csv").write_bytes(b"\x00\x01binary\x00")
    p = run_cli(
        "run",
        "--as-of",
        AS_OF,
        "--landing",
        str(landing),
        "--home",
        str(tmp_path / "h"),
        "--json",
        env={"CREDIT_DB_URL": ""},
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout)["status"] == "published"
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'h' / 'credit.db'}")
    files = pd.read_sql("select path, status, reject_code from landed_files", eng).set_index("path")
    assert files.loc["samr/20260629_extra.csv", "status"] == "rejected"
    assert files.loc["samr/20260629_extra.csv", "reject_code"] == "empty"
    assert files.loc["eco/20260629_notes.csv", "reject_code"] == "binary"


def test_symlinks_out_of_the_landing_folder_are_rejected(tmp_path):
    target = tmp_path / "secret.csv"
    target.write_text(f"{HEADER}\n{ROW}\n", encoding="utf-8")
    link = tmp_path / "20260630_credit_record.csv"
    link.symlink_to(target)
    with pytest.raises(ingest.UnusableFile) as exc:
        ingest.read_file(link)
    assert exc.value.code == "symlink"


def test_xlsx_zip_bomb_is_rejected_before_inflating(tmp_path):
    import zipfile

    p = tmp_path / "20260630_credit_record.xlsx"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/worksheets/sheet1.xml", b"0" * (200 * 1024 * 1024))  # packs about 1000:1
    assert p.stat().st_size < 1024 * 1024
    with pytest.raises(ingest.UnusableFile) as exc:
        ingest.read_file(p)  # the default cell budget alone would allow this much XML
    assert exc.value.code == "too_large" and "zip bomb" in str(exc.value)
