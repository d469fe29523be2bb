"""The outbox on disk: deliveries staged in hidden folders, synced and renamed into place, the
CURRENT pointers, and recovery of what a killed publication left behind. Nothing under the home
is followed through a symbolic link: a link planted in the outbox (to another agency's folder,
or out of the home) is refused, never written through."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import sqlalchemy as sa

from scoring.history.store import runs

FAULT_ENV = "CREDIT_FAULT_INJECT"  # "publish:N": fail after N agencies' files (tests of atomicity)


class UnsafePath(ValueError):
    """A path under the home that goes through a symbolic link, or a home shared by two stores."""


STORE_FILE = ".credit-store"  # in the home: the store (database) whose deliveries it holds


def checked_path(home: Path, path: Path) -> Path:
    """``path``, refused if any part of it below ``home`` that exists is a symbolic link (the home
    itself is the operator's choice and may be one)."""
    home, path = Path(home), Path(path)
    try:
        rel = path.relative_to(home)
    except ValueError:
        raise UnsafePath(f"{path} is not under the home {home}") from None
    at = home
    for part in rel.parts:
        if part in ("..", ""):
            raise UnsafePath(f"{path}: '..' under the home {home}")
        at = at / part
        if at.is_symlink():
            raise UnsafePath(f"{at} is a symbolic link; nothing under the home is followed")
    return path


def store_identity(home: Path, url: str, slug: str) -> str:
    """What a home records as its store: an SQLite file inside the home by its path there (it
    moves with the home when the home is copied or moved), any other database by its slug."""
    u = sa.engine.make_url(url)
    if u.get_backend_name() == "sqlite" and u.database:
        try:
            rel = Path(u.database).resolve().relative_to(Path(home).resolve())
            return f"sqlite:{rel.as_posix()}"
        except ValueError:
            pass
    return slug


def claim_outbox(outbox: Path, store_slug: str) -> None:
    """The home records the store its outbox delivers for; a second store pointed at the same
    home is refused (its deliveries would overwrite the first's under the same run ids)."""
    outbox.mkdir(parents=True, exist_ok=True)
    mark = outbox.parent / STORE_FILE
    if mark.is_symlink():
        raise UnsafePath(f"{mark} is a symbolic link; nothing under the home is followed")
    if mark.exists():
        owner = mark.read_text(encoding="utf-8").strip()
        if owner != store_slug:
            raise UnsafePath(
                f"the home's outbox {outbox} delivers for store {owner!r}, not {store_slug!r}: "
                "give each store its own --home"
            )
        return
    fsync_write(mark, (store_slug + "\n").encode("utf-8"))


def fsync_write(path: Path, data: bytes) -> None:
    # O_NOFOLLOW: a link planted where a file is written is an error, never written through.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_outbox(folder: Path, files: dict[str, bytes], home: Path | None = None) -> None:
    """Atomically replace ``folder`` with exactly these files (identical bytes → no change).
    Under a home, nothing on the way (nor the folder) may be a symbolic link."""
    if home is not None:
        checked_path(home, folder)
    elif folder.is_symlink():
        raise UnsafePath(f"{folder} is a symbolic link; nothing under the home is followed")
    if (
        folder.is_dir()
        and all((folder / n).is_file() and (folder / n).read_bytes() == d for n, d in files.items())
        and sorted(p.name for p in folder.iterdir()) == sorted(files)
    ):
        return
    tmp = folder.with_name("." + folder.name + ".tmp")  # hidden: readers never pick it up
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name, data in sorted(files.items()):
        fsync_write(tmp / name, data)
    old = folder.with_name("." + folder.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    if old.exists():
        shutil.rmtree(old)


def link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)  # the same bytes for every agency of a scope: written and synced once
    except OSError:
        shutil.copyfile(src, dest)
        with open(dest, "rb+") as fh:
            os.fsync(fh.fileno())


def write_pointer(path: Path, run_id: str, as_of) -> None:
    """Point an agency's CURRENT file at the newest published run (never back to an older one)."""
    if path.is_symlink():
        raise UnsafePath(f"{path} is a symbolic link; nothing under the home is followed")
    if path.exists():
        old = path.read_text(encoding="utf-8").split()
        if len(old) >= 2 and old[1] > str(as_of):
            return
    tmp = path.with_name(".CURRENT.tmp")
    fsync_write(tmp, f"{run_id} {as_of}\n".encode())
    tmp.replace(path)


def kill_point(stage: str, count: int) -> None:
    """Fault injection for the kill tests: ``publish-kill:<stage>:<n>`` kills this process with
    SIGKILL (no cleanup runs) once n agencies have reached that stage."""
    spec = os.environ.get(FAULT_ENV, "")
    if spec == f"publish-kill:{stage}:{count}":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def stage_dir(outbox: Path, agency_id: str, run_id: str) -> Path:
    return outbox / agency_id / f".staging-{run_id}"


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def swap_in(staged: Path, folder: Path) -> None:
    """Make a staged delivery the visible one by rename; a delivery of the same night already
    there moves aside first and is removed after."""
    for p in (staged, folder, folder.parent):
        if p.is_symlink():
            raise UnsafePath(f"{p} is a symbolic link; nothing under the home is followed")
    old = folder.with_name(f".old-{folder.name}")
    if old.exists():
        shutil.rmtree(old)
    if folder.exists():
        folder.rename(old)
    staged.rename(folder)
    fsync_dir(folder.parent)
    if old.exists():
        shutil.rmtree(old)


def recover_publications(store) -> tuple[list[str], set[str]]:
    """Finish or undo what a killed publication left behind; run at the start of every run, under
    the store's run lock. A staged delivery whose run the database holds as published is renamed
    into place (the commit was the publication); any other staged delivery is removed, and its run
    is returned among the ones to close as failed. Returns (one note per action, those run ids)."""
    outbox = store.home / "outbox"
    notes: list[str] = []
    unpublished: set[str] = set()
    if not outbox.is_dir():
        return notes, unpublished
    with store.engine.connect() as conn:
        state = {
            r.run_id: (r.status, r.as_of)
            for r in conn.execute(sa.select(runs.c.run_id, runs.c.status, runs.c.as_of))
        }
    for agency_dir in sorted(p for p in outbox.iterdir() if p.is_dir() and not p.is_symlink()):
        for entry in sorted(agency_dir.iterdir()):
            if not entry.is_dir() or entry.is_symlink():
                continue
            if entry.name.startswith(".staging-"):
                run_id = entry.name[len(".staging-") :]
                status, as_of = state.get(run_id, (None, None))
                if status == "published":
                    swap_in(entry, agency_dir / run_id)
                    write_pointer(agency_dir / "CURRENT", run_id, as_of)
                    notes.append(f"{agency_dir.name}/{run_id}: committed publication completed")
                else:
                    shutil.rmtree(entry)
                    unpublished.add(run_id)
                    notes.append(
                        f"{agency_dir.name}/{run_id}: staged files of an unpublished run removed"
                    )
            elif entry.name.startswith(".old-"):  # a same-night delivery a killed swap left aside
                shutil.rmtree(entry)
    return notes, unpublished


def fault_after() -> int | None:
    spec = os.environ.get(FAULT_ENV, "")
    if spec.startswith("publish:"):
        return int(spec.split(":", 1)[1])
    return None
