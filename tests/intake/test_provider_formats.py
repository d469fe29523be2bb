"""Real provider files: the national layouts as data, registered providers only, one record however
its number is written. The corpus and where each layout comes from: provider_formats.py."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd
import provider_formats as pf
import pytest

from scoring.common.catalogue import Catalogue
from scoring.common.config import ConfigError
from scoring.intake import ingest
from scoring.intake.arrivals import SHANGHAI, list_landing, set_arrival
from scoring.intake.deliveries import stage_deliveries
from scoring.intake.layouts import LICENCE, PENALTY, LayoutSet
from scoring.intake.providers import Registry
from scoring.intake.readers import UnusableFile

CAT = Catalogue.in_force("2026-06-30")
DAY = pd.Timestamp("2026-06-30")


def _staged(raw):
    if raw.layout.feed in ("register",):
        return ingest.stage_entities(raw, DAY)
    return ingest.stage_records(raw, CAT, DAY)


def _all_accepted(raw, n: int):
    """Every row read and staged with no bad value, and no required column missing."""
    assert raw.missing_required == [], raw.missing_required
    assert len(raw.bad_rows) == 0, raw.bad_rows
    stg = _staged(raw)
    assert len(stg) == n
    assert stg["bad_values"].isna().all(), stg["bad_values"].dropna().tolist()
    assert stg["doc_number"].notna().all() and stg["decision_date"].notna().all()
    return stg


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_2016_penalty_layout_in_csv_and_xlsx(fmt):
    rows = [pf.HEADERS_2016_PENALTY] + pf.rows_2016_penalty(5)
    data = pf.csv_bytes(rows) if fmt == "csv" else pf.xlsx_bytes([("Sheet1", rows)])
    raw = ingest.read_bytes(data, f"20260630_penalty.{fmt}", "samr")
    assert raw.layout.id == "sgs_penalty_2016" and raw.header_line == 1
    stg = _all_accepted(raw, 5)
    # 处罚类别1 and 处罚类别2 are one penalty category; the uscc comes from 行政相对人代码_1.
    assert stg["penalty_category"].tolist()[:2] == ["罚款", "罚款；没收违法所得"]
    assert stg["uscc"].tolist() == pf.usccs(5)
    assert (stg["item_code"] == "PENALTY_GENERAL").all()
    # No fine column in 2016: the statutory small-fine test cannot make these "simplified".
    assert (stg["grade"] != "simplified").all()


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_2016_licence_layout_in_csv_and_xlsx(fmt):
    rows = [pf.HEADERS_2016_LICENCE] + pf.rows_2016_licence(4)
    data = pf.csv_bytes(rows, "gb18030") if fmt == "csv" else pf.xlsx_bytes([("许可", rows)])
    raw = ingest.read_bytes(data, f"20260630_licence.{fmt}", "samr")
    assert raw.layout.id == "sgs_licence_2016"
    stg = _all_accepted(raw, 4)
    assert (stg["item_code"] == "LICENCE").all()
    assert stg["valid_to_date"].notna().all()


def test_exchange_field_codes_penalty_and_licence():
    pen = pf.csv_bytes([pf.CODES_2016_PENALTY] + pf.rows_2016_penalty(3))
    raw = ingest.read_bytes(pen, "20260630_penalty.csv", "samr")
    assert raw.layout.id == "sgs_penalty_2016"
    _all_accepted(raw, 3)
    lic = pf.csv_bytes([[c.lower() for c in pf.CODES_2016_LICENCE]] + pf.rows_2016_licence(3))
    raw = ingest.read_bytes(lic, "20260630_licence.csv", "samr")
    assert raw.layout.id == "sgs_licence_2016"
    _all_accepted(raw, 3)


def _penalty_2021_rows(headers, n=3):
    ids = pf.usccs(n, 200)
    rows = []
    for i in range(n):
        value = {
            "行政相对人名称": f"示例公司{i}",
            "行政相对人类别": "法人及非法人组织",
            "uscc": ids[i],
            "行政处罚决定书文号": f"黑环罚〔2026〕{i + 1}号",
            "处罚类别": "罚款",
            "罚款金额（万元）": "1,234.5",
            "处罚决定日期": "2026-6-30",
            "处罚机关": "黑龙江省生态环境厅",
        }
        rows.append(
            [value.get(h, value["uscc"] if "统一社会信用代码" in h else "") for h in headers]
        )
    return rows


def test_2021_header_variants_are_the_standard_columns():
    headers = [
        h.replace("行政相对人代码_1(统一社会信用代码)", "行政相对人代码-1（统一社会信用代码）")
        .replace("行政相对人代码_2(工商注册号)", "行政相对人代码_2 (工商注册号)")
        .replace("行政相对人代码_3(组织机构代码)", "行政相对人代码＿3（组织机构代码）")
        for h in PENALTY.standard_headers()
    ]
    raw = ingest.read_bytes(pf.csv_bytes([headers] + _penalty_2021_rows(headers)), "x.csv", "eco")
    assert raw.layout.id == "sgs_penalty"
    assert {"uscc", "reg_no", "org_code"} <= set(raw.mapping.values())
    stg = _all_accepted(raw, 3)
    assert stg["uscc"].notna().all()
    assert stg["amount_yuan"].tolist() == [12_345_000.0] * 3  # 1,234.5 万元


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_title_rows_above_the_header(fmt):
    rows = (
        [
            ["2026年6月行政处罚信息公示表"],
            ["填报单位：哈尔滨市市场监督管理局", "", "日期：2026-06-30"],
        ]
        + [pf.HEADERS_2016_PENALTY]
        + pf.rows_2016_penalty(4)
    )
    data = pf.csv_bytes(rows) if fmt == "csv" else pf.xlsx_bytes([("Sheet1", rows)])
    raw = ingest.read_bytes(data, f"20260630_penalty.{fmt}", "samr")
    assert (raw.layout.id, raw.header_line, raw.header_rows) == ("sgs_penalty_2016", 3, 1)
    stg = _all_accepted(raw, 4)
    assert stg["line_no"].tolist() == [4, 5, 6, 7], "rows keep their numbers in the whole file"
    assert "header row 3" in raw.where


def test_data_on_the_second_sheet():
    notes = [["填报说明"], ["1. 日期格式为 YYYY-MM-DD"], ["2. 金额单位为万元"]]
    rows = [pf.HEADERS_2016_LICENCE] + pf.rows_2016_licence(3)
    data = pf.xlsx_bytes([("说明", notes), ("行政许可", rows)])
    raw = ingest.read_bytes(data, "20260630_licence.xlsx", "samr")
    assert (raw.layout.id, raw.sheet, raw.header_line) == ("sgs_licence_2016", "行政许可", 1)
    assert raw.where == "header row 1 of sheet 行政许可"
    _all_accepted(raw, 3)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_two_row_merged_header(fmt):
    top, sub, merges = pf.merged_2021_licence_header(row=2)
    rows = [["行政许可信息"], top, sub] + pf.rows_2021_licence_merged(4)
    if fmt == "csv":
        data = pf.csv_bytes(rows)
    else:
        data = pf.xlsx_bytes([("Sheet1", rows)], {"Sheet1": merges})
    raw = ingest.read_bytes(data, f"20260630_licence.{fmt}", "samr")
    assert (raw.layout.id, raw.header_line, raw.header_rows) == ("sgs_licence", 2, 2)
    assert {"uscc", "reg_no", "org_code", "soc_no"} <= set(raw.mapping.values())
    assert "rows 2-3 (merged)" in raw.where
    stg = _all_accepted(raw, 4)
    assert stg["uscc"].tolist() == pf.usccs(4, 80)


EIGHT_SPELLINGS = [
    "哈市监罚〔2026〕12号",
    "哈市监罚[2026]12号",
    "哈市监罚（2026）12号",
    "哈市监罚〔２０２６〕１２号",
    "哈市监罚\u200b〔2026〕12号",
    "哈市监罚〔2026〕12號",
    "哈市监罚\u3000〔2026〕12号",
    " 哈市监罚【2026】12号 ",
]


def test_eight_spellings_of_one_document_number_are_one_record():
    rows = [list(pf.rows_2016_penalty(1)[0]) for _ in range(8)]
    for row, doc in zip(rows, EIGHT_SPELLINGS):
        row[0] = doc
    raw = ingest.read_bytes(
        pf.csv_bytes([pf.HEADERS_2016_PENALTY] + [list(r) for r in rows]), "p.csv", "samr"
    )
    stg = ingest.stage_records(raw, CAT, DAY)
    assert ingest.record_key(stg).nunique() == 1
    # The provider's own text is what is kept (and published): trimmed, never rewritten.
    assert stg["doc_number"].nunique() == 8 and stg["doc_number"][1] == "哈市监罚[2026]12号"


def test_unknown_layout_message_is_readable_chinese():
    data = pf.csv_bytes([["企业名称", "处罚文号\u202e", "金额"], ["甲", "乙", "1"]])
    with pytest.raises(UnusableFile) as exc:
        ingest.read_bytes(data, "x.csv", "samr")
    msg = str(exc.value)
    assert "企业名称" in msg and "\\u4f01" not in msg
    assert "\\u202e" in msg, "a bidi control is escaped, never echoed"


def test_withdrawn_status_never_counts():
    rows = pf.rows_2016_penalty(2)
    rows[1][16] = "撤销"
    raw = ingest.read_bytes(pf.csv_bytes([pf.HEADERS_2016_PENALTY] + rows), "p.csv", "samr")
    stg = ingest.stage_records(raw, CAT, DAY)
    assert stg["removal_date"].isna()[0] and stg["removal_date"][1] == stg["decision_date"][1]
    assert stg["removal_reason"][1] == "当前状态：撤销"
    rows[0][16] = "待定"
    raw = ingest.read_bytes(pf.csv_bytes([pf.HEADERS_2016_PENALTY] + rows), "p.csv", "samr")
    assert ingest.stage_records(raw, CAT, DAY)["bad_values"][0] == "record_status;"


# --------------------------------------------------------------------------- bad configuration


def _layout_file(tmp_path, text: str):
    p = tmp_path / "v9.yaml"
    p.write_text(text, encoding="utf-8")
    return p


LAYOUT_OK = """layouts:
  - id: my_penalty
    feed: penalty
    title: 测试
    columns:
      doc_number: {headers: [文号]}
      subject_name: {headers: [名称]}
    required: [doc_number]
    signature: [doc_number]
"""


def test_layout_file_with_unknown_feed_or_duplicate_alias_is_refused_with_file_and_line(
    tmp_path,
):
    assert LayoutSet.load(_layout_file(tmp_path, LAYOUT_OK)).ids() == ["my_penalty"]
    bad_feed = LAYOUT_OK.replace("feed: penalty", "feed: penalties")
    with pytest.raises(ConfigError, match=r"v9\.yaml:3: layout my_penalty: unknown feed"):
        LayoutSet.load(_layout_file(tmp_path, bad_feed))
    dup = LAYOUT_OK.replace("headers: [名称]", "headers: [名称, 文 号]")
    with pytest.raises(ConfigError, match=r"v9\.yaml:7: .*'文 号' of subject_name is already"):
        LayoutSet.load(_layout_file(tmp_path, dup))


def test_provider_override_mapping_two_headers_to_one_column_is_refused(tmp_path):
    text = pf.REGISTRY_TEMPLATE.replace(
        "OVERRIDES", "overrides: {sgs_penalty: {文书号: doc_number, 决定文号: doc_number}}"
    )
    p = tmp_path / "providers.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"providers\.yaml:9: overrides: .*both map to column"):
        Registry.load(p)
    p.write_text(pf.REGISTRY_TEMPLATE.replace("OVERRIDES", "colour: red"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"providers\.yaml:9: unknown key 'colour'"):
        Registry.load(p)
    p.write_text(
        pf.REGISTRY_TEMPLATE.replace("OVERRIDES", "overrides: {sgs_penalty: {文书号: doc_number}}"),
        encoding="utf-8",
    )
    reg = Registry.load(p)
    hdr = ["文书号" if h == "行政处罚决定书文号" else h for h in PENALTY.standard_headers()]
    data = pf.csv_bytes([hdr] + _penalty_2021_rows(hdr))
    over = reg.by_folder("samr").overrides
    assert (
        ingest.read_bytes(data, "p.csv", "samr", overrides=over).mapping["文书号"] == "doc_number"
    )


# --------------------------------------------------------------------------- registered folders


def _land(path, text="a,b\n1,2\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    set_arrival(path, dt.datetime(2026, 6, 30, 18, tzinfo=SHANGHAI))


def test_only_registered_folders_are_read_and_every_other_entry_is_named(tmp_path):
    landing = tmp_path / "landing"
    for folder in ("samr", "SAMR", "sa mr", "samr..", "-rf", "..samr", "x" * 250):
        _land(landing / folder / "20260630_penalty.csv")
    os.makedirs(os.path.join(os.fsencode(landing), b"\xff\xfeprov"))
    _land(landing / "samr" / "20261340_penalty.csv")  # no such date
    _land(landing / "stray.csv")
    listing = list_landing(landing, DAY, registry=Registry.in_force(DAY))
    assert [c.rel for c in listing.candidates] == ["samr/20260630_penalty.csv"]
    kinds = sorted((p["kind"], p["path"][:12]) for p in listing.problems)
    assert kinds == sorted(
        [
            ("unregistered_folder", "SAMR"),
            ("unregistered_folder", "sa mr"),
            ("unregistered_folder", "samr.."),
            ("unregistered_folder", "-rf"),
            ("unregistered_folder", "..samr"),
            ("bad_folder_name", "x" * 12),
            ("bad_folder_name", "\\xff\\xfeprov"),
            ("impossible_name_date", "samr/2026134"),
            ("not_in_provider_folder", "stray.csv"),
        ]
    )
    import json

    json.dumps(listing.problems, ensure_ascii=False).encode("utf-8")  # storable as it is


def test_a_provider_may_deliver_only_its_feeds(tmp_path):
    from scoring.intake.layouts import DISHONEST

    landing = tmp_path / "landing"
    header = ",".join(DISHONEST.standard_headers())
    text = header + "\n" + ",".join(["x"] * len(DISHONEST.standard_headers())) + "\n"
    _land(landing / "samr" / "20260630_dishonest_debtor.csv", text)
    _land(landing / "court" / "20260630_dishonest_debtor.csv", text + text.splitlines()[1] + "\n")
    _land(landing / "nobody" / "20260630_dishonest_debtor.csv", text)
    night = stage_deliveries(landing, DAY, CAT, pd.DataFrame(), "r1", out=tmp_path / "staged")
    status = {f["path"]: (f["status"], f.get("reject_code")) for f in night.files}
    assert status == {
        "court/20260630_dishonest_debtor.csv": ("staged", None),
        "samr/20260630_dishonest_debtor.csv": ("rejected", "feed_not_allowed"),
    }
    assert set(night.records["provider"]) == {"court"}
    kinds = {(p["kind"], p["path"]) for p in night.problems}
    assert ("feed_not_allowed", "samr/20260630_dishonest_debtor.csv") in kinds
    assert ("unregistered_folder", "nobody") in kinds


def test_every_demo_provider_folder_is_registered():
    reg = Registry.in_force(DAY)
    assert {p["id"] for p in Catalogue.in_force(DAY).providers} <= {p.folder for p in reg.providers}
    for p in Catalogue.in_force(DAY).providers:
        assert set(p["feeds"]) <= set(reg.by_folder(p["id"]).feeds)


def test_layouts_and_registry_versions_are_pinned_hashes():
    assert len(LayoutSet.in_force(DAY).sha256) == 64
    assert LICENCE in LayoutSet.in_force(DAY).layouts
    assert len(Registry.in_force(DAY).sha256) == 64


# --------------------------------------------------------------------------- layout suggest


def test_layout_suggest_proposes_the_nearest_layout_and_an_override(tmp_path):
    from scoring.intake.suggest import render, suggest

    headers = list(pf.HEADERS_2016_PENALTY)
    headers[0], headers[2] = "处罚决定文书号", "处罚种类1"  # an export that renamed two columns
    rows = [["2026年行政处罚公示"], headers] + pf.rows_2016_penalty(2)
    with pytest.raises(UnusableFile, match="header matches no known layout"):
        ingest.read_bytes(pf.csv_bytes(rows), "p.csv", "samr")
    s = suggest(pf.csv_bytes(rows), "p.csv")
    assert (s["layout"], s["header_line"]) == ("sgs_penalty_2016", 2)
    assert s["override"] == {"处罚决定文书号": "doc_number", "处罚种类1": "penalty_category_1"}
    text = render(s, "samr")
    assert (
        text.startswith("最接近的格式：双公示 行政处罚（2016 版）")
        and "处罚种类1: penalty_category_1" in text
    )
    # The proposal, committed as the provider's override, makes the file read.
    p = tmp_path / "providers.yaml"
    p.write_text(
        pf.REGISTRY_TEMPLATE.replace(
            "OVERRIDES",
            "overrides: {sgs_penalty_2016: {处罚决定文书号: doc_number, 处罚种类1: penalty_category_1}}",
        ),
        encoding="utf-8",
    )
    over = Registry.load(p).by_folder("samr").overrides
    raw = ingest.read_bytes(pf.csv_bytes(rows), "p.csv", "samr", overrides=over)
    assert raw.layout.id == "sgs_penalty_2016" and raw.header_line == 2
    _all_accepted(raw, 2)


# --------------------------------------------------------------------------- through the CLI


def test_credit_check_prints_readable_chinese_and_points_to_layout_suggest(tmp_path):
    from conftest import run_cli

    f = tmp_path / "20260630_penalty.csv"
    f.write_bytes(pf.csv_bytes([["企业名称", "处罚文号", "金额"], ["甲公司", "乙", "1"]]))
    p = run_cli("check", str(f))
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0, p.stderr
    assert "企业名称,处罚文号,金额" in p.stderr and "\\u" not in p.stderr
    assert f"credit layout suggest {f}" in p.stderr
    rows = [["2026年行政处罚公示"], ["处罚决定文书号"] + pf.HEADERS_2016_PENALTY[1:]]
    f.write_bytes(pf.csv_bytes(rows + pf.rows_2016_penalty(2)))
    p = run_cli("layout", "suggest", str(f), "--provider", "samr")
    assert p.returncode == 0, p.stderr
    assert (
        p.stdout.startswith("最接近的格式：双公示 行政处罚（2016 版）")
        and "表头在第 2 行" in p.stdout
    )
    assert "处罚决定文书号: doc_number" in p.stdout


def test_the_corpus_passes_the_gate_row_by_row():
    """Every row of every corpus file is accepted by the record suite, as `credit check` runs it."""
    from scoring.cli.check import _row_reasons

    top, sub, merges = pf.merged_2021_licence_header(row=1)
    files = {
        "2016 penalty csv": pf.csv_bytes([pf.HEADERS_2016_PENALTY] + pf.rows_2016_penalty(5)),
        "2016 licence xlsx, second sheet": pf.xlsx_bytes(
            [
                ("说明", [["填报说明"]]),
                ("数据", [pf.HEADERS_2016_LICENCE] + pf.rows_2016_licence(4)),
            ]
        ),
        "exchange codes": pf.csv_bytes([pf.CODES_2016_PENALTY] + pf.rows_2016_penalty(3)),
        "title rows": pf.csv_bytes([["公示表"], pf.HEADERS_2016_PENALTY] + pf.rows_2016_penalty(2)),
        "merged header": pf.xlsx_bytes(
            [("Sheet1", [top, sub] + pf.rows_2021_licence_merged(3))], {"Sheet1": merges}
        ),
    }
    for what, data in files.items():
        raw = ingest.read_bytes(data, "20260630_x.xlsx" if data[:2] == b"PK" else "x.csv", "samr")
        bad = _row_reasons(raw, CAT, DAY)
        assert raw.received > 0 and len(bad) == 0, (what, bad.tolist())


def test_a_broken_layout_file_stops_the_night_before_it_starts(tmp_path):
    import shutil

    from conftest import run_cli

    from scoring.common.config import CONFIG_DIR

    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    # The version the night reads with (a later one appended to the history takes over; breaking
    # one no night reads would prove nothing).
    in_force = config / "layouts" / Path(LayoutSet.in_force("2026-06-30").source).name
    text = in_force.read_text(encoding="utf-8")
    broken = text.replace("feed: inspection", "feed: inspections", 1)
    assert broken != text
    in_force.write_text(broken, encoding="utf-8")
    (tmp_path / "landing" / "samr").mkdir(parents=True)
    home = tmp_path / "home"
    p = run_cli(
        "run",
        "--as-of",
        "2026-06-30",
        "--landing",
        str(tmp_path / "landing"),
        "--home",
        str(home),
        env={"CREDIT_CONFIG_DIR": str(config), "CREDIT_DB_URL": ""},
    )
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    line = p.stderr.strip().splitlines()[-1]
    assert f"{in_force.name}:" in line and "unknown feed 'inspections'" in line, line
    import sqlalchemy as sa

    eng = sa.create_engine(f"sqlite:///{home / 'credit.db'}")
    with eng.connect() as conn:
        assert conn.execute(sa.text("select count(*) from runs")).scalar() == 0
