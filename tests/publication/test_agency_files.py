"""Agency files a clerk can open: Chinese headers and code labels by default, the machine variant
for agencies that ask for it, an XLSX beside the CSV where asked, a data dictionary (字段说明) in
every delivery; and a delivery's CSV opened by a real spreadsheet program (LibreOffice, headless)
keeps its Chinese headers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import openpyxl
import pandas as pd
import pytest

from scoring.publication.labels import CODES, DICTIONARY_FILE, header, labelled
from scoring.publication.publish import PUBLISHED_COLUMNS, load_agencies

ZH_HEADERS = [header(c, "zh") for c in PUBLISHED_COLUMNS]


def _folder(run, agency_id):
    return run["home"] / "outbox" / agency_id / run["summary"]["run_id"]


def _csv(folder, **kw) -> pd.DataFrame:
    enc = json.loads((folder / "manifest.json").read_text())["csv_encoding"]
    return pd.read_csv(folder / "results.csv", dtype=str, keep_default_na=False, encoding=enc, **kw)


def test_labels_map_codes_and_leave_unknown_values_alone():
    import pyarrow as pa

    t = pa.table({"tier": ["A", "D", None], "eval_class": ["individual_business", "x", "x"]})
    out = labelled(t, "zh")
    assert out.column_names == ["信用风险等级", "主体类别"]
    assert out["信用风险等级"].to_pylist() == ["信用风险低", "信用风险高", None]
    assert out["主体类别"].to_pylist() == ["个体工商户", "x", "x"]
    assert labelled(t, "machine").equals(t)


def test_the_agencies_command_shows_each_agencys_files():
    from conftest import run_cli

    p = run_cli("agencies", "--json")
    files = {r["id"]: r["files"] for r in json.loads(p.stdout)}
    assert files["hlj-tax"] == {"labels": "machine", "xlsx": False}
    assert files["lindian-samr"] == {"labels": "zh", "xlsx": True}


def test_every_delivery_is_in_its_agencys_variant_with_a_data_dictionary(sqlite_run):
    agencies = load_agencies()
    assert {a.get("labels", "zh") for a in agencies} == {"zh", "machine"}
    for agency in agencies:
        folder = _folder(sqlite_run, agency["id"])
        csv = _csv(folder)
        parquet = pd.read_parquet(folder / "results.parquet")
        assert list(parquet.columns) == PUBLISHED_COLUMNS  # programs keep machine names
        guide = pd.read_csv(
            folder / DICTIONARY_FILE,
            dtype=str,
            keep_default_na=False,
            encoding=json.loads((folder / "manifest.json").read_text())["csv_encoding"],
        )
        assert guide["字段"].tolist() == list(csv.columns)
        assert guide["机器字段名"].tolist() == PUBLISHED_COLUMNS
        assert (guide["说明"] != "").all()
        manifest = json.loads((folder / "manifest.json").read_text())
        assert DICTIONARY_FILE in manifest["files"]
        if agency.get("labels") == "machine":
            assert list(csv.columns) == PUBLISHED_COLUMNS
            assert set(csv["tier"]) <= set("ABCD")
        else:
            assert list(csv.columns) == ZH_HEADERS
            assert set(csv["信用风险等级"]) <= set(CODES["tier"].values())
            assert set(csv["主体类别"]) <= set(CODES["eval_class"].values())
            # the same entities, the same tiers as the machine file, only labelled
            assert csv["统一社会信用代码"].tolist() == parquet["uscc"].tolist()
            assert (
                csv["信用风险等级"].tolist()
                == parquet["tier"].astype(str).map(CODES["tier"]).tolist()
            )
        assert ((folder / "results.xlsx").exists()) == bool(agency.get("xlsx"))


def test_the_xlsx_holds_what_the_csv_holds_with_numbers_as_numbers(sqlite_run):
    agency = next(a for a in load_agencies() if a.get("xlsx"))
    folder = _folder(sqlite_run, agency["id"])
    csv = _csv(folder)
    assert len(csv), "the xlsx agency's scope is empty in the test province"
    wb = openpyxl.load_workbook(folder / "results.xlsx", read_only=True)
    rows = list(wb.worksheets[0].values)
    assert list(rows[0]) == ZH_HEADERS
    assert len(rows) == len(csv) + 1
    score = ZH_HEADERS.index("综合评价得分")
    assert all(isinstance(r[score], (int, float)) for r in rows[1:])
    assert [r[0] for r in rows[1:]] == csv["统一社会信用代码"].tolist()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "results.xlsx" in manifest["files"]


def _soffice() -> str:
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have LibreOffice (.ci/run installs libreoffice-calc-nogui)")
        pytest.skip("LibreOffice not installed (apt-get install -y libreoffice-calc-nogui)")
    return exe


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_a_delivery_csv_opens_in_libreoffice_with_chinese_headers_intact(
    sqlite_run, tmp_path, encoding
):
    exe = _soffice()
    agency = next(
        a
        for a in load_agencies()
        if a.get("labels", "zh") == "zh" and a.get("encoding", "utf-8-sig") == encoding
    )
    folder = _folder(sqlite_run, agency["id"])
    src = tmp_path / "results.csv"
    shutil.copyfile(folder / "results.csv", src)
    # LibreOffice names encodings by number (rtl_TextEncoding): 76 UTF-8, 85 GB18030
    charset = {"utf-8-sig": "76", "gb18030": "85"}[encoding]
    out = subprocess.run(
        [
            exe,
            f"-env:UserInstallation=file://{tmp_path}/profile",
            "--headless",
            "--infilter=CSV:44,34," + charset,
            "--convert-to",
            "xlsx",
            "--outdir",
            str(tmp_path),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0 and (tmp_path / "results.xlsx").exists(), out.stdout + out.stderr
    rows = list(openpyxl.load_workbook(tmp_path / "results.xlsx").worksheets[0].values)
    assert list(rows[0]) == ZH_HEADERS
    csv = _csv(folder)
    assert len(rows) == len(csv) + 1
    assert rows[1][0] == csv["统一社会信用代码"].iloc[0]
    tier = ZH_HEADERS.index("信用风险等级")
    assert {r[tier] for r in rows[1:]} <= set(CODES["tier"].values())
