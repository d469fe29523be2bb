import hashlib
import json

import pandas as pd

from scoring.common import codes
from scoring.world.province import build_world, write_deliveries


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix in (".csv",):
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_entities_have_valid_codes_and_realistic_kinds():
    w = build_world(5000, seed=3)
    ent = w.entities
    assert codes.valid_uscc(ent["uscc"].to_numpy()).all()
    assert ent["uscc"].is_unique
    first = set(ent["uscc"].str[0])
    assert {"9", "N", "Y", "1", "5"} <= first
    assert (ent["uscc"].str[:2] == "92").mean() > 0.2  # individual businesses
    assert ent["division_code"].str.startswith("23").all()  # Heilongjiang
    assert codes.valid_id_number(ent["legal_rep_id_number"].to_numpy()).all()


def test_deterministic_for_a_seed(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_deliveries(a, "2026-06-30", n_entities=800, seed=11)
    write_deliveries(b, "2026-06-30", n_entities=800, seed=11)
    assert _digest(a) == _digest(b)


def test_mixes_layouts_encodings_and_formats(province):
    state = json.loads((province / "demo_state.json").read_text())
    files = state["deliveries"][0]["files"]
    assert {f["format"] for f in files} == {"csv", "xlsx"}
    assert {"utf-8", "utf-8-sig", "gb18030"} <= {f["encoding"] for f in files}
    feeds = {f["file"].split("_", 1)[1].split(".")[0] for f in files}
    assert {
        "penalty",
        "licence",
        "dishonest_debtor",
        "credit_record",
        "inspection",
        "register",
        "credit_change",
    } <= feeds


def test_defects_injected_at_the_known_rate_with_labels(province):
    d = pd.read_csv(province / "ground_truth" / "defects.csv")
    state = json.loads((province / "demo_state.json").read_text())
    rows = sum(f["rows"] for f in state["deliveries"][0]["files"])
    assert 0.012 < len(d) / rows < 0.03
    assert set(d["defect"]) == {
        "bad_check_digit",
        "unknown_item",
        "simplified_procedure",
        "future_date",
        "duplicate",
        "missing_field",
        "orphan_change",
    }
    truth = pd.read_csv(province / "ground_truth" / "entities.csv")
    assert "latent_risk" in truth.columns


def test_later_call_adds_only_the_new_period(tmp_path):
    write_deliveries(tmp_path, "2026-06-30", n_entities=600, seed=5)
    before = {p.name for p in (tmp_path / "landing").rglob("*.*")}
    res = write_deliveries(tmp_path, "2026-07-31", n_entities=600, seed=5)
    after = {p.name for p in (tmp_path / "landing").rglob("*.*")}
    new = after - before
    assert new and all(n.startswith("20260731_") for n in new)
    assert res["delivered_until"] == "2026-07-31"


def test_a_province_in_pieces_has_unique_codes_and_labels_in_the_whole_files(tmp_path, monkeypatch):
    """A province too large to build at once is built piece by piece: codes and document numbers
    stay unique across the pieces, and each defect label points at its line in the whole file."""
    from scoring.world import pieces, province
    from scoring.world.defects import CODE_COLUMNS

    monkeypatch.setattr(province, "PIECES_FROM", 500)
    monkeypatch.setattr(pieces, "PIECE_ENTITIES", 400)
    res = write_deliveries(tmp_path, "2026-06-30", n_entities=1000, seed=5)
    ent = pd.read_csv(tmp_path / "ground_truth" / "entities.csv", dtype=str)
    assert len(ent) == 1000 and ent["uscc"].is_unique
    assert codes.valid_uscc(ent["uscc"].to_numpy()).all()
    labels = pd.read_csv(tmp_path / "ground_truth" / "defects.csv")
    for f in res["files"]:
        if f["format"] != "csv":
            continue
        frame = pd.read_csv(
            tmp_path / "landing" / f["file"],
            dtype=str,
            encoding=f["encoding"],
            keep_default_na=False,
        )
        assert len(frame) == f["rows"]
        mine = labels[labels["file"] == f["file"]]
        doc, code = province._key_columns(frame)
        if doc:  # one row per record and subject, but for the duplicates injected on purpose
            dup = mine.loc[mine["defect"] == "duplicate", "line"] - 2
            assert not frame.drop(index=dup)[[doc, code]].duplicated().any(), f["file"]
        code_col = next((c for c in CODE_COLUMNS if c in frame.columns), None)
        bad = mine.loc[mine["defect"] == "bad_check_digit", "line"] - 2
        if code_col and "行政相对人类别" not in frame.columns and len(bad):
            assert not codes.valid_uscc(frame[code_col].to_numpy()[bad]).any(), f["file"]


def test_a_province_in_pieces_resumes_after_a_crash_with_the_same_files(tmp_path, monkeypatch):
    """Building a province in pieces takes long: a call stopped mid-way (here: the third piece
    fails to build) leaves its finished pieces parked, and the next call builds only the rest and
    writes the same files as a call never stopped."""
    from scoring.world import pieces, province

    monkeypatch.setattr(province, "PIECES_FROM", 300)
    monkeypatch.setattr(pieces, "PIECE_ENTITIES", 200)
    write_deliveries(tmp_path / "whole", "2026-06-30", n_entities=600, seed=5)
    built, real = [], pieces.build_world

    def crash_on_third(n, seed, params, shard):
        built.append(shard[1])
        if len(built) == 3:
            raise MemoryError("stopped")
        return real(n, seed, params, shard=shard)

    monkeypatch.setattr(pieces, "build_world", crash_on_third)
    try:
        write_deliveries(tmp_path / "resumed", "2026-06-30", n_entities=600, seed=5)
    except MemoryError:
        pass
    assert not (tmp_path / "resumed" / "demo_state.json").exists()
    write_deliveries(tmp_path / "resumed", "2026-06-30", n_entities=600, seed=5)
    assert built == [0, 200, 400, 400]  # the first two pieces were not built again
    assert not (tmp_path / "resumed" / ".pieces").exists()
    assert _digest(tmp_path / "resumed") == _digest(tmp_path / "whole")
