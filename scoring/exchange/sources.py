"""Sources per provider and push targets per agency, as data (the ``sources`` key of the
provider registry, config/providers.yaml, in force on the night; the ``push`` key of
config/agencies.yaml). Only connection ids live here: credentials come from the
environment or Airflow Connections, never from the repository."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from scoring.exchange.secrets import ExchangeError
from scoring.intake.provider_sources import IDENT
from scoring.intake.providers import PROVIDERS_FILE, Registry

PUSH_KINDS = ("sql", "sftp", "http")
_IDENT = IDENT


@dataclass(frozen=True)
class Ready:
    """How a provider says a night is complete (``scoring.exchange.ready`` looks)."""

    kind: str  # table | marker | endpoint
    table: str = ""  # table: the readiness (batch) table of the exchange database
    date_column: str = ""  # table: the night's date (date, timestamp or text YYYY-MM-DD/YYYYMMDD)
    flag_column: str = ""  # table: optional completion flag (完成标志)
    path: str = ""  # marker: the SFTP path of the marker; {date} is the night as YYYYMMDD
    endpoint: str = ""  # endpoint: GET endpoint?date=YYYY-MM-DD -> {"ready": true}
    timeout_s: float = 3600.0  # how long the night waits for the signal
    poll_s: float = 60.0  # how often it looks

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Source:
    id: str
    provider: str
    kind: str
    feed: str
    layout: str = ""
    conn_id: str = ""
    table: str = ""
    path: str = ""
    endpoint: str = ""
    watermark: str = ""  # the source's 数据更新时间戳 column (field, for HTTP)
    status_column: str = ""  # 当前状态: rows marked deleted become revocations
    deleted_values: tuple[str, ...] = ("撤销", "删除")
    delete_table: str = ""  # a table of deleted record ids (delete_key): revoked by the night
    delete_key: str = ""
    order_by: tuple[str, ...] = ()
    page_size: int = 500
    items_key: str = "data"
    timeout_s: float = 30.0
    window: dict = field(default_factory=dict)  # {from: "HH:MM", to: "HH:MM"} Asia/Shanghai
    ready: Ready | None = None  # the provider's signal that the night is complete, if it gives one


@dataclass(frozen=True)
class Exchange:
    sources: tuple[Source, ...]
    registry_sha256: str = ""  # the provider registry version the sources come from

    def for_provider(self, provider: str) -> list[Source]:
        return [s for s in self.sources if s.provider == provider]

    def source(self, source_id: str) -> Source:
        for s in self.sources:
            if s.id == source_id:
                return s
        raise ExchangeError("unknown_source", f"no source {source_id} in the exchange registry")


def load_exchange(as_of=None, path: Path | str = PROVIDERS_FILE) -> Exchange:
    """The sources of the provider registry version in force on ``as_of`` (the latest without)."""
    reg = Registry.latest(path) if as_of is None else Registry.in_force(as_of, path)
    out = []
    for prov in sorted(reg.providers, key=lambda p: p.id):
        for item in prov.extra.get("sources") or []:
            if item["feed"] not in prov.feeds:
                raise ValueError(
                    f"{path}: source {item['id']}: provider {prov.id} does not deliver "
                    f"{item['feed']!r}"
                )
            out.append(_source(prov.id, dict(item)))
    ids = [s.id for s in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"{path}: source id {dup[0]} appears under two providers")
    return Exchange(sources=tuple(out), registry_sha256=reg.sha256)


def _source(provider: str, item: dict) -> Source:
    """A checked registry entry (scoring.intake.provider_sources) as a Source."""
    for key in ("deleted_values", "order_by"):
        if key in item:
            item[key] = tuple(str(v) for v in item[key])
    if "window" in item:
        item["window"] = dict(item["window"])
    if "ready" in item:
        item["ready"] = Ready(**dict(item["ready"]))
    return Source(provider=provider, **item)


def safe_remote_path(path: str) -> str:
    """An SFTP folder the pipeline may read: absolute or relative, never climbing with ``..``."""
    p = PurePosixPath(str(path))
    if not str(path) or ".." in p.parts or "\x00" in str(path):
        raise ExchangeError("unsafe_path", f"SFTP path {path!r} is refused (it climbs with '..')")
    return str(p)


def push_target(agency: dict) -> dict | None:
    """The agency's own system the pipeline pushes to, if it has one (validated)."""
    target = agency.get("push")
    if not target:
        return None
    if target.get("kind") not in PUSH_KINDS or not target.get("conn_id"):
        raise ValueError(
            f"agency {agency['id']}: push needs kind ({'|'.join(PUSH_KINDS)}), conn_id"
        )
    for key in ("table", "receipt_table"):
        if target.get(key) and not _IDENT.match(str(target[key])):
            raise ValueError(f"agency {agency['id']}: push {key} is not a plain name")
    if target["kind"] == "sftp":
        safe_remote_path(target.get("path", ""))
    return dict(target)
