"""Where a store keeps one database's files, and the name of every artifact a run leaves in its
folder: each named here once, so the steps, the report, the audit and the CLI agree."""

from __future__ import annotations

import hashlib
from pathlib import Path

import sqlalchemy as sa


def db_slug(url: str) -> str:
    """A folder name per database, so two databases never share (and confuse) a lake."""
    u = sa.engine.make_url(url)
    base = f"{u.get_backend_name()}-{(u.database or 'db').replace('/', '_').replace(':', '_')}"
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return (base[-40:] if len(base) > 40 else base) + "-" + digest


class RunFolder:
    """One run's folder (``<home>/runs/<db slug>/<run id>``) and the artifacts in it."""

    ENTITY_SCORE = "entity_score.parquet"  # the results, in USCC order; hashed in the manifest
    ENTITY_SCORE_CSV = "entity_score.csv"  # the canonical CSV whose sha256 is the output hash
    PUBLISHED = "published.parquet"  # the night's full published table, the next night's base
    ACTIVE_ENTITIES = "active_entities.parquet"
    OBJECTIONS = "objections.parquet"
    PREVIOUS_POLICY = "previous_policy.parquet"  # a new policy's first month: the old one beside it
    MANIFEST = "manifest.json"
    WAIVERS = "waivers.json"
    LANDING = "landing.json"  # arrival cut, landing problems, the layouts and registry read with
    DATA_DOCS = "data_docs.json"
    REPORT = "report.html"
    PROVIDER_REPORT = "provider_report.csv"
    FRESHNESS = "freshness.csv"
    OBJECTIONS_OVERDUE = "objections_overdue.csv"
    CORRECTIONS = "corrections.parquet"
    CORRECTIONS_LATE = "corrections_late.csv"
    STAGED_TABLES = ("stg_record", "stg_entity", "stg_change", "unparsed")

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def staged(self) -> Path:
        return self.path / "staged"

    @property
    def raw(self) -> Path:
        """The delivered rows as read, kept to show beside a quarantined row."""
        return self.staged / "raw"

    @property
    def raw_index(self) -> Path:
        return self.raw / "index.json"

    @property
    def snapshots(self) -> Path:
        """The night's full-snapshot files: counts, guard verdicts, their next indexes (beside)."""
        return self.staged / "snapshots.json"

    def staged_table(self, name: str) -> Path:
        return self.staged / f"{name}.parquet"

    @property
    def partitions(self) -> Path:
        """The night's partition plan and pieces; removed once the results are stored."""
        return self.path / "partitions"

    @property
    def gx(self) -> Path:
        return self.path / "gx"

    @property
    def gx_data_docs(self) -> Path:
        return self.gx / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"

    @property
    def entity_score(self) -> Path:
        return self.path / self.ENTITY_SCORE

    @property
    def entity_score_csv(self) -> Path:
        return self.path / self.ENTITY_SCORE_CSV

    @property
    def published(self) -> Path:
        return self.path / self.PUBLISHED

    @property
    def active_entities(self) -> Path:
        return self.path / self.ACTIVE_ENTITIES

    @property
    def objections(self) -> Path:
        return self.path / self.OBJECTIONS

    @property
    def previous_policy(self) -> Path:
        return self.path / self.PREVIOUS_POLICY

    @property
    def manifest(self) -> Path:
        return self.path / self.MANIFEST

    @property
    def waivers(self) -> Path:
        return self.path / self.WAIVERS

    @property
    def landing(self) -> Path:
        return self.path / self.LANDING

    @property
    def data_docs(self) -> Path:
        return self.path / self.DATA_DOCS

    @property
    def report(self) -> Path:
        return self.path / self.REPORT

    @property
    def provider_report(self) -> Path:
        return self.path / self.PROVIDER_REPORT

    @property
    def freshness(self) -> Path:
        return self.path / self.FRESHNESS

    @property
    def objections_overdue(self) -> Path:
        return self.path / self.OBJECTIONS_OVERDUE

    @property
    def corrections(self) -> Path:
        return self.path / self.CORRECTIONS

    @property
    def corrections_late(self) -> Path:
        return self.path / self.CORRECTIONS_LATE
