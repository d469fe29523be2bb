"""The fast delivery-workbook writer against the openpyxl export it stands in for."""

from __future__ import annotations

import datetime as dt
import zipfile

import pandas as pd
import pytest

from scoring.intake.xlsx import read_xlsx
from scoring.world.province import write_frame
from scoring.world.xlsx_out import column_letter, text_only, write_xlsx

WHEN = dt.datetime(2026, 3, 31, 20, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "行政相对人名称": ["大庆市顺龙家政服务有限公司", " 前后有空格 ", "A&B <公司>", None],
            "罚款金额（万元）": ["0.88", "", "1,000.5", "3"],
            "处罚决定日期": ["2019-07-04", "2019/7/4", None, "二〇一九年七月四日"],
        }
    )


def _part(path, name):
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


def test_the_sheet_is_byte_for_byte_what_openpyxl_writes(tmp_path):
    df = _frame()
    write_xlsx(df, tmp_path / "fast.xlsx", WHEN)
    df.to_excel(tmp_path / "pandas.xlsx", index=False, engine="openpyxl")
    for part in ("xl/worksheets/sheet1.xml", "xl/workbook.xml", "xl/styles.xml"):
        assert _part(tmp_path / "fast.xlsx", part) == _part(tmp_path / "pandas.xlsx", part)
    fast = read_xlsx((tmp_path / "fast.xlsx").read_bytes())
    slow = read_xlsx((tmp_path / "pandas.xlsx").read_bytes())
    assert fast[0] == slow[0] and fast[1].equals(slow[1]) and fast[3] == slow[3]
    assert fast[1].iloc[2, 0] == "A&B <公司>"


def test_the_same_frame_gives_the_same_bytes_stamped_with_the_delivery(tmp_path):
    write_xlsx(_frame(), tmp_path / "a.xlsx", WHEN)
    write_xlsx(_frame(), tmp_path / "b.xlsx", WHEN)
    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes()
    core = _part(tmp_path / "a.xlsx", "docProps/core.xml").decode()
    assert core.count("2026-03-31T12:00:00Z") == 2  # created and modified, in UTC


def test_anything_but_text_is_left_to_pandas(tmp_path):
    assert text_only(_frame())
    assert not text_only(pd.DataFrame({"金额": [1.5, None]}))
    assert not text_only(pd.DataFrame({"公式": ["=SUM(A1:A2)"]}))
    assert text_only(pd.DataFrame({"等号": ["=", "ab"], "空": [float("nan")] * 2}))
    numbers = pd.DataFrame({"金额": [1.5, 2.0]})
    write_frame(numbers, tmp_path / "n.xlsx", "xlsx", None, WHEN)
    assert b't="n"' in _part(tmp_path / "n.xlsx", "xl/worksheets/sheet1.xml")


def test_control_characters_are_refused_as_openpyxl_refuses_them(tmp_path):
    with pytest.raises(ValueError, match="cannot be used in worksheets"):
        write_xlsx(pd.DataFrame({"名称": ["坏\x07字符"]}), tmp_path / "x.xlsx", WHEN)


def test_column_letters():
    assert [column_letter(i) for i in (0, 25, 26, 31, 701, 702)] == [
        "A",
        "Z",
        "AA",
        "AF",
        "ZZ",
        "AAA",
    ]
