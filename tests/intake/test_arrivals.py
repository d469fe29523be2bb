"""What a delivery is: (provider, file name, content hash) with its arrival time."""

from __future__ import annotations

import datetime as dt
import pathlib

import pandas as pd

from scoring.intake.arrivals import (
    SHANGHAI,
    classify,
    list_landing,
    nightly_arrival_cut,
    set_arrival,
)


def _land(landing, rel, text, arrived: dt.datetime):
    p = landing / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    set_arrival(p, arrived)
    return p


def _at(day: str, hour: int = 18) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), tzinfo=SHANGHAI)


def _history(listing, status="stored"):
    return pd.DataFrame(
        [
            {
                "path": c.rel,
                "provider": c.provider,
                "sha256": c.sha256,
                "n_bytes": c.n_bytes,
                "arrived_at": c.arrived_at.astimezone(dt.UTC).replace(tzinfo=None),
                "status": status,
                "delivered_on": c.name_date,
            }
            for c in listing.candidates
        ]
    )


def test_known_files_are_not_read_again(tmp_path):
    _land(tmp_path, "court/20260105_dishonest_debtor.csv", "a,b\n1,2\n", _at("2026-01-05"))
    first = classify(list_landing(tmp_path, "2026-01-05"), pd.DataFrame())
    assert [c.action for c in first.candidates] == ["new"]
    hashed = []
    again = classify(
        list_landing(tmp_path, "2026-01-06"),
        _history(first),
        hasher=lambda p: hashed.append(p) or "x",
    )
    assert again.candidates == [] and hashed == [], "a quiet night must not re-read known files"


def test_same_content_under_a_new_name_and_a_correction(tmp_path):
    _land(tmp_path, "court/20260105_dishonest_debtor.csv", "a,b\n1,2\n", _at("2026-01-05"))
    hist = _history(classify(list_landing(tmp_path, "2026-01-05"), pd.DataFrame()))
    _land(tmp_path, "court/20260106_dishonest_debtor.csv", "a,b\n1,2\n", _at("2026-01-06"))
    _land(tmp_path, "court/20260105_dishonest_debtor.csv", "a,b\n1,3\n", _at("2026-01-06"))
    got = {
        c.rel: (c.action, c.same_as)
        for c in classify(list_landing(tmp_path, "2026-01-06"), hist).candidates
    }
    assert got == {
        "court/20260105_dishonest_debtor.csv": (
            "correction",
            "court/20260105_dishonest_debtor.csv",
        ),
        "court/20260106_dishonest_debtor.csv": (
            "same_content",
            "court/20260105_dishonest_debtor.csv",
        ),
    }


def test_future_dated_and_after_the_arrival_cut_are_problems_not_losses(tmp_path):
    _land(tmp_path, "tax/20260110_penalty.csv", "a\n1\n", _at("2026-01-05"))
    _land(
        tmp_path, "tax/20260105_penalty.csv", "a\n2\n", _at("2026-01-08")
    )  # late: arrived three days on
    listing = list_landing(
        tmp_path, "2026-01-05", arrival_cut=nightly_arrival_cut(dt.date(2026, 1, 5))
    )
    assert listing.candidates == []
    kinds = {p["path"]: p["kind"] for p in listing.problems}
    assert kinds == {
        "tax/20260110_penalty.csv": "future_dated",
        "tax/20260105_penalty.csv": "arrived_after_cut",
    }
    # The night that knew it reads it.
    later = list_landing(
        tmp_path, "2026-01-08", arrival_cut=nightly_arrival_cut(dt.date(2026, 1, 8))
    )
    assert [c.rel for c in later.candidates] == ["tax/20260105_penalty.csv"]


def test_unreadable_landing_and_a_vanished_provider_folder(tmp_path, monkeypatch):
    _land(tmp_path, "court/20260105_dishonest_debtor.csv", "a,b\n1,2\n", _at("2026-01-05"))
    _land(tmp_path, "tax/20260105_penalty.csv", "a\n1\n", _at("2026-01-05"))
    hist = _history(classify(list_landing(tmp_path, "2026-01-05"), pd.DataFrame()))
    (tmp_path / "tax" / "20260105_penalty.csv").unlink()
    (tmp_path / "tax").rmdir()
    gone = classify(list_landing(tmp_path, "2026-01-06"), hist)
    assert [(p["kind"], p["path"]) for p in gone.problems] == [("provider_folder_missing", "tax")]

    real = pathlib.Path.iterdir

    def denied(self, blocked):
        if self == blocked:
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(pathlib.Path, "iterdir", lambda self: denied(self, tmp_path / "court"))
    listing = classify(list_landing(tmp_path, "2026-01-06"), hist)
    assert [(p["kind"], p["path"]) for p in listing.problems] == [
        ("folder_unreadable", "court"),
        ("provider_folder_missing", "tax"),
    ]
    assert "Permission denied" in listing.problems[0]["message"]
    monkeypatch.setattr(pathlib.Path, "iterdir", lambda self: denied(self, tmp_path))
    listing = classify(list_landing(tmp_path, "2026-01-06"), hist)
    assert [p["kind"] for p in listing.problems] == ["landing_unreadable"], (
        "no false 'provider missing' lines"
    )


# A file rejected as a whole (or held by a failed gate) had no rows read: its bytes must never make a
# later copy "same content" — that copy's rows would be lost without a word.


def _rows(listing, statuses):
    h = _history(listing)
    h["status"] = [statuses[r] for r in h["path"]]
    return h


def test_a_rejected_or_held_file_never_shadows_a_later_copy(tmp_path):
    text = "a,b\n1,2\n"
    _land(tmp_path, "court/20260105_dishonest_debtor.csv", text, _at("2026-01-05"))
    _land(tmp_path, "court/20260105_dishonest_debtor_copy.csv", text, _at("2026-01-05"))
    first = classify(list_landing(tmp_path, "2026-01-05"), pd.DataFrame())
    assert [c.action for c in first.candidates] == ["new", "same_content"]
    _land(tmp_path, "court/20260106_dishonest_debtor.csv", text, _at("2026-01-06"))
    # The first was rejected (and its copy recorded as "same content" that night): nothing was read.
    rejected = _rows(
        first,
        {
            "court/20260105_dishonest_debtor.csv": "rejected",
            "court/20260105_dishonest_debtor_copy.csv": "same_content",
        },
    )
    got = {
        c.rel: c.action for c in classify(list_landing(tmp_path, "2026-01-06"), rejected).candidates
    }
    assert got == {"court/20260106_dishonest_debtor.csv": "new"}
    # The night failed a hard gate: the first file is held (read again), its copy was "same content".
    held = _rows(
        first,
        {
            "court/20260105_dishonest_debtor.csv": "held",
            "court/20260105_dishonest_debtor_copy.csv": "same_content",
        },
    )
    got = {c.rel: c.action for c in classify(list_landing(tmp_path, "2026-01-06"), held).candidates}
    assert got == {
        "court/20260105_dishonest_debtor.csv": "new",
        "court/20260106_dishonest_debtor.csv": "same_content",
    }
    # Stored: then (and only then) a copy is the same content.
    stored = _rows(
        first,
        {
            "court/20260105_dishonest_debtor.csv": "stored",
            "court/20260105_dishonest_debtor_copy.csv": "same_content",
        },
    )
    got = {
        c.rel: (c.action, c.same_as)
        for c in classify(list_landing(tmp_path, "2026-01-06"), stored).candidates
    }
    assert got == {
        "court/20260106_dishonest_debtor.csv": (
            "same_content",
            "court/20260105_dishonest_debtor.csv",
        )
    }


def test_a_rejected_file_sent_again_under_its_name_is_read_again(tmp_path):
    text = "a,b\n1,2\n"
    _land(tmp_path, "court/20260105_dishonest_debtor.csv", text, _at("2026-01-05"))
    first = classify(list_landing(tmp_path, "2026-01-05"), pd.DataFrame())
    rejected = _rows(first, {"court/20260105_dishonest_debtor.csv": "rejected"})
    assert classify(list_landing(tmp_path, "2026-01-06"), rejected).candidates == [], (
        "untouched: not re-read"
    )
    _land(
        tmp_path, "court/20260105_dishonest_debtor.csv", text, _at("2026-01-06")
    )  # delivered again
    got = [
        (c.rel, c.action)
        for c in classify(list_landing(tmp_path, "2026-01-06"), rejected).candidates
    ]
    assert got == [("court/20260105_dishonest_debtor.csv", "new")], (
        "no rows of it were ever read: not a correction"
    )


def test_a_copy_of_a_file_rejected_the_same_night_is_read_not_recorded_as_a_repeat(tmp_path):
    from scoring.common.catalogue import Catalogue
    from scoring.intake.deliveries import stage_deliveries
    from scoring.intake.layouts import PENALTY

    header = ",".join(PENALTY.standard_headers())
    text = header + "\n" + ",".join(["x"] * len(PENALTY.standard_headers())) + "\n"
    for name in ("20260105_penalty.csv", "20260105_penalty_resent.csv"):
        _land(tmp_path / "landing", f"tax/{name}", text, _at("2026-01-05"))
    cat = Catalogue.load()
    cat.gates["max_file_bytes"] = (
        10  # this night's limit refuses both files (say, before it was raised)
    )
    night = stage_deliveries(
        tmp_path / "landing",
        pd.Timestamp("2026-01-05"),
        cat,
        pd.DataFrame(),
        "r1",
        out=tmp_path / "staged",
    )
    assert [(f["path"], f["status"]) for f in night.files] == [
        ("tax/20260105_penalty.csv", "rejected"),
        ("tax/20260105_penalty_resent.csv", "rejected"),
    ]
    history = pd.DataFrame(night.files).assign(feed=None)  # as stored: a rejected file has no feed
    _land(tmp_path / "landing", "tax/20260106_penalty.csv", text, _at("2026-01-06"))
    cat.gates["max_file_bytes"] = Catalogue.load().gates["max_file_bytes"]
    later = stage_deliveries(
        tmp_path / "landing",
        pd.Timestamp("2026-01-06"),
        cat,
        history,
        "r2",
        out=tmp_path / "staged",
    )
    assert [(f["path"], f["status"], f["received"]) for f in later.files] == [
        ("tax/20260106_penalty.csv", "staged", 1)
    ]


def test_a_repeat_takes_its_counts_from_the_stored_version_it_repeats(tmp_path):
    from scoring.intake.deliveries import _twin

    history = pd.DataFrame(
        [
            {
                "path": "tax/20260105_penalty.csv",
                "sha256": "x",
                "status": "stored",
                "received": 7,
                "feed": "penalty",
            },
            {
                "path": "tax/20260105_penalty.csv",
                "sha256": "y",
                "status": "rejected",
                "received": 0,
                "feed": None,
            },
        ]
    )
    assert _twin("tax/20260105_penalty.csv", "x", [], history)["received"] == 7, (
        "a later rejected version under the same name is not the twin"
    )
