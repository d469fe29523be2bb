"""Deltas between full deliveries: an agency that applies each night's changes and removals to
the full file it had holds exactly the full file of the later night, scope by scope."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import run_cli

from scoring.publication.labels import MACHINE_NAMES


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    from scoring.world.province import write_deliveries

    tmp = tmp_path_factory.mktemp("delta")
    root, home, full = tmp / "prov", tmp / "home", tmp / "full"
    out = {}
    for day in ("2026-04-30", "2026-05-01", "2026-05-04"):
        write_deliveries(root, day, n_entities=400, seed=7, defect_rate=0.0)
        # The delta home reads and writes in chunks of 37 rows: every merge and every delta crosses
        # chunk boundaries (the full home uses the default chunk, larger than this province).
        for h, env in ((home, {"CREDIT_CHUNK_ROWS": "37"}), (full, {"CREDIT_PUBLISH_FULL": "1"})):
            r = run_cli(
                "run",
                "--as-of",
                day,
                "--landing",
                str(root / "landing"),
                "--home",
                str(h),
                "--json",
                env=env,
            )
            assert r.returncode == 0, r.stderr[-2000:]
            out[(h.name, day)] = json.loads(r.stdout)
    return home, full, out


def _encoding(folder) -> str:
    return json.loads((folder / "manifest.json").read_text())["csv_encoding"]


def _read(folder, name):
    return (
        pd.read_parquet(folder / name)
        if name.endswith(".parquet")
        else pd.read_csv(
            folder / name, dtype=str, keep_default_na=False, encoding=_encoding(folder)
        ).rename(columns=MACHINE_NAMES)
    )


def test_deltas_applied_to_the_monthly_full_give_the_full_file(nights):
    home, full, out = nights
    agencies = sorted(p.name for p in (home / "outbox").iterdir() if p.is_dir())
    assert agencies
    days = [
        ("2026-04-30", "full"),
        ("2026-05-01", "full"),
        ("2026-05-04", "delta"),
    ]  # the 1st is full
    checked = 0
    for agency in agencies:
        held = None
        for day, kind in days:
            run_id = out[("home", day)]["run_id"]
            folder = home / "outbox" / agency / run_id
            manifest = json.loads((folder / "manifest.json").read_text())
            assert manifest["delivery"] == kind
            if kind == "full":
                held = _read(folder, "results.parquet")
            else:
                assert manifest["base_run_id"] == out[("home", "2026-05-01")]["run_id"]
                changes, removed = _read(folder, "changes.parquet"), _read(folder, "removed.csv")
                assert manifest["rows"] == len(changes) and manifest["removed"] == len(removed)
                held = pd.concat(
                    [held[~held["uscc"].isin(set(changes["uscc"]) | set(removed["uscc"]))], changes]
                )
                held = held.sort_values("uscc", ignore_index=True)
            truth = _read(
                full / "outbox" / agency / out[("full", day)]["run_id"], "results.parquet"
            )
            pd.testing.assert_frame_equal(held.reset_index(drop=True), truth, check_dtype=False)
            checked += 1
    assert checked == 3 * len(agencies)


def test_a_delta_is_smaller_than_the_full_file_and_names_only_changes(nights):
    home, full, out = nights
    run_id = out[("home", "2026-05-04")]["run_id"]
    sizes = [
        json.loads((p / "manifest.json").read_text()) for p in (home / "outbox").glob(f"*/{run_id}")
    ]
    fulls = {
        m["agency_id"]: m["rows"]
        for m in (
            json.loads((p / "manifest.json").read_text())
            for p in (full / "outbox").glob(f"*/{out[('full', '2026-05-04')]['run_id']}")
        )
    }
    assert sum(m["rows"] for m in sizes) < sum(fulls.values())
    assert any(m["rows"] > 0 for m in sizes)  # a night with deliveries changes someone


def test_reading_in_chunks_changes_no_byte(nights):
    # The delta home merged its partitions and wrote agencies' files 37 rows at a time.
    home, full, out = nights
    for day in ("2026-04-30", "2026-05-01", "2026-05-04"):
        assert out[("home", day)]["output_sha256"] == out[("full", day)]["output_sha256"]
    compared = 0
    for day in ("2026-04-30", "2026-05-01"):  # full deliveries in both homes
        for folder in sorted((home / "outbox").glob(f"*/{out[('home', day)]['run_id']}")):
            twin = full / "outbox" / folder.parent.name / out[("full", day)]["run_id"]
            assert (folder / "results.csv").read_bytes() == (twin / "results.csv").read_bytes()
            pd.testing.assert_frame_equal(
                _read(folder, "results.parquet"), _read(twin, "results.parquet")
            )
            compared += 1
    assert compared >= 2
