"""Sources per provider and push targets per agency, as data (config/exchange.yaml and the
``push`` key of config/agencies.yaml). Only connection ids live here: credentials come from the
environment or Airflow Connections, never from the repository."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from scoring.common.config import CONFIG_DIR, load_document
from scoring.exchange.secrets import ExchangeError

DEFAULT_SOURCES = CONFIG_DIR / "exchange.yaml"
KINDS = ("landing", "sql", "sftp", "http")
PUSH_KINDS = ("sql", "sftp", "http")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
_SOURCE_KEYS = {
    "id",
    "kind",
    "conn_id",
    "table",
    "path",
    "endpoint",
    "feed",
    "layout",
    "watermark",
    "status_column",
    "deleted_values",
    "order_by",
    "page_size",
    "items_key",
    "timeout_s",
    "window",
}


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
    order_by: tuple[str, ...] = ()
    page_size: int = 500
    items_key: str = "data"
    timeout_s: float = 30.0
    window: dict = field(default_factory=dict)  # {from: "HH:MM", to: "HH:MM"} Asia/Shanghai


@dataclass(frozen=True)
class Exchange:
    sources: tuple[Source, ...]

    def for_provider(self, provider: str) -> list[Source]:
        return [s for s in self.sources if s.provider == provider]

    def source(self, source_id: str) -> Source:
        for s in self.sources:
            if s.id == source_id:
                return s
        raise ExchangeError("unknown_source", f"no source {source_id} in the exchange registry")


def load_exchange(path: Path | str = DEFAULT_SOURCES) -> Exchange:
    doc = load_document(path)
    out = []
    for provider, items in sorted((doc.get("sources") or {}).items()):
        for item in items or []:
            out.append(_source(str(provider), dict(item)))
    ids = [s.id for s in out]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{path}: duplicate source ids")
    return Exchange(sources=tuple(out))


def _source(provider: str, item: dict) -> Source:
    unknown = sorted(set(item) - _SOURCE_KEYS)
    name = item.get("id", "?")
    if unknown:
        raise ValueError(f"exchange source {name}: unknown keys {', '.join(unknown)}")
    if item.get("kind") not in KINDS:
        raise ValueError(f"exchange source {name}: kind must be one of {', '.join(KINDS)}")
    if item.get("table") and not _IDENT.match(str(item["table"])):
        raise ValueError(f"exchange source {name}: table {item['table']!r} is not a plain name")
    for key in ("deleted_values", "order_by"):
        if key in item:
            item[key] = tuple(str(v) for v in item[key])
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
