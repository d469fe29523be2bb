"""Nothing under the home is followed through a symbolic link, and a home delivers for one store."""

from __future__ import annotations

import os

import pytest

from scoring.publication.outbox import (
    UnsafePath,
    checked_path,
    claim_outbox,
    fsync_write,
    swap_in,
    write_outbox,
    write_pointer,
)


def test_a_link_anywhere_below_the_home_is_refused(tmp_path):
    home, other = tmp_path / "home", tmp_path / "elsewhere"
    (home / "outbox").mkdir(parents=True)
    other.mkdir()
    assert (
        checked_path(home, home / "outbox" / "hrb-samr" / "x") == home / "outbox" / "hrb-samr" / "x"
    )
    os.symlink(other, home / "outbox" / "hrb-samr")
    with pytest.raises(UnsafePath, match="symbolic link"):
        checked_path(home, home / "outbox" / "hrb-samr" / "nightly-20260630")
    with pytest.raises(UnsafePath):
        checked_path(home, home / "outbox" / ".." / ".." / "x")
    with pytest.raises(UnsafePath, match="symbolic link"):
        write_outbox(home / "outbox" / "hrb-samr" / "sampling" / "p1", {"a": b"1"}, home=home)
    assert not list(other.iterdir())  # nothing was written through the link


def test_files_and_pointers_are_never_written_through_a_link(tmp_path):
    target = tmp_path / "victim.txt"
    target.write_text("keep")
    os.symlink(target, tmp_path / "manifest.json")
    with pytest.raises(OSError):
        fsync_write(tmp_path / "manifest.json", b"x")
    os.symlink(target, tmp_path / "CURRENT")
    with pytest.raises(UnsafePath):
        write_pointer(tmp_path / "CURRENT", "nightly-20260630", "2026-06-30")
    assert target.read_text() == "keep"


def test_a_delivery_is_not_swapped_into_a_linked_folder(tmp_path):
    agency = tmp_path / "outbox" / "dq-samr"
    staged = agency / ".staging-nightly-20260630"
    staged.mkdir(parents=True)
    (tmp_path / "other").mkdir()
    os.symlink(tmp_path / "other", agency / "nightly-20260630")
    with pytest.raises(UnsafePath):
        swap_in(staged, agency / "nightly-20260630")
    assert not list((tmp_path / "other").iterdir())


def test_a_home_delivers_for_one_store(tmp_path):
    outbox = tmp_path / "outbox"
    claim_outbox(outbox, "credit_a")
    claim_outbox(outbox, "credit_a")  # the same store again: fine
    with pytest.raises(UnsafePath, match="give each store its own --home"):
        claim_outbox(outbox, "credit_b")


def test_a_home_copied_with_its_own_sqlite_store_is_still_its_store(tmp_path):
    from scoring.publication.outbox import store_identity

    a, b = tmp_path / "a", tmp_path / "b"
    assert store_identity(a, f"sqlite:///{a / 'credit.db'}", "slug-a") == "sqlite:credit.db"
    assert store_identity(b, f"sqlite:///{b / 'credit.db'}", "slug-b") == "sqlite:credit.db"
    assert store_identity(a, "postgresql+psycopg://x@h/db", "pg-db-1") == "pg-db-1"
    assert store_identity(a, f"sqlite:///{tmp_path / 'elsewhere.db'}", "s") == "s"
