"""The versioned information catalogue (公共信用信息目录, Art. 18): items, publicity rules with
effective dates, gates, providers and feeds. Its version is its content hash (see config.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scoring.common.config import (  # noqa: F401 (re-exported)
    CONFIG_DIR,
    canonical_json,
    content_hash,
    load_document,
)

DEFAULT_CATALOGUE = CONFIG_DIR / "catalogue" / "v1.yaml"
CATALOGUE_HISTORY = CONFIG_DIR / "catalogue" / "history.yaml"

SEVERITIES = ("none", "minor", "general", "severe")
NATURES = ("basic", "positive", "negative")


def add_months(d: pd.Series, months: int) -> pd.Series:
    return d + pd.DateOffset(months=int(months))


@dataclass(frozen=True)
class Catalogue:
    doc: dict
    sha256: str = field(default="")

    @classmethod
    def load(cls, path: Path | str = DEFAULT_CATALOGUE) -> Catalogue:
        doc = load_document(path)
        return cls.from_doc(doc)

    @classmethod
    def from_doc(cls, doc: dict) -> Catalogue:
        cat = cls(doc=doc, sha256=content_hash(doc))
        cat.validate()
        return cat

    @classmethod
    def in_force(cls, as_of, history: Path | str = CATALOGUE_HISTORY) -> Catalogue:
        """The catalogue version in force on a date (latest effective_from <= as_of; the first one
        before any), checked against the hash its history entry approved."""
        entries = sorted(load_document(history)["history"], key=lambda e: str(e["effective_from"]))
        day = str(pd.Timestamp(as_of).date())
        entry = ([e for e in entries if str(e["effective_from"]) <= day] or entries[:1])[-1]
        cat = cls.load(Path(history).parent / entry["catalogue"])
        if entry.get("sha256") and entry["sha256"] != cat.sha256:
            raise ValueError(
                f"catalogue {entry['catalogue']} does not match the approved hash in {Path(history).name}"
            )
        return cat

    @classmethod
    def latest(cls, history: Path | str = CATALOGUE_HISTORY) -> Catalogue:
        """The newest catalogue version (for checking a file without a night's date)."""
        return cls.in_force("2262-01-01", history)

    def validate(self) -> None:
        codes = [i["code"] for i in self.doc["items"]]
        if len(codes) != len(set(codes)):
            raise ValueError("catalogue: duplicate item codes")
        for item in self.doc["items"]:
            if item["severity"] not in SEVERITIES or item["nature"] not in NATURES:
                raise ValueError(f"catalogue item {item['code']}: bad severity or nature")
            if not 1 <= int(item["kind"]) <= 10:
                raise ValueError(
                    f"catalogue item {item['code']}: kind must be one of Art. 18's ten"
                )

    @property
    def items(self) -> list[dict]:
        return self.doc["items"]

    @property
    def item_codes(self) -> list[str]:
        return sorted(i["code"] for i in self.items)

    def item(self, code: str) -> dict:
        for i in self.items:
            if i["code"] == code:
                return i
        raise KeyError(code)

    def items_frame(self) -> pd.DataFrame:
        rows = []
        for i in self.items:
            pub = i.get("publicity")
            rows.append(
                {
                    "item_code": i["code"],
                    "kind": int(i["kind"]),
                    "name_zh": i["name_zh"],
                    "name_en": i["name_en"],
                    "nature": i["nature"],
                    "severity": i["severity"],
                    "opening": i["opening"],
                    "repairable": bool(i.get("repairable", False)),
                    "severe_list": bool(i.get("severe_list", False)),
                    "publicity_kind": pub if isinstance(pub, str) else "fixed",
                    "publicity_months": int(pub["months"]) if isinstance(pub, dict) else None,
                }
            )
        return pd.DataFrame(rows).sort_values("item_code", ignore_index=True)

    @property
    def gates(self) -> dict:
        return self.doc["gates"]

    @property
    def providers(self) -> list[dict]:
        return self.doc["providers"]

    def provider(self, pid: str) -> dict | None:
        return next((p for p in self.providers if p["id"] == pid), None)

    @property
    def feeds(self) -> dict:
        return self.doc["feeds"]

    def rules_in_force(self, on: dt.date) -> dict:
        """The publicity rule set in force on a date (latest effective_from <= on)."""
        rules = sorted(self.doc["publicity_rules"], key=lambda r: r["effective_from"])
        chosen = None
        for r in rules:
            if dt.date.fromisoformat(str(r["effective_from"])) <= on:
                chosen = r
        if chosen is None:
            chosen = rules[0]
        return chosen

    def rule_frame(self) -> pd.DataFrame:
        """Publicity bounds per rule set and severity, for vectorised as-of joins."""
        rows = []
        for r in self.doc["publicity_rules"]:
            for sev in ("minor", "general", "severe"):
                rows.append(
                    {
                        "rule_id": r["id"],
                        "effective_from": pd.Timestamp(str(r["effective_from"])),
                        "severity": sev,
                        "min_months": int(r[sev]["min_months"]),
                        "max_months": int(r[sev]["max_months"]),
                    }
                )
        return pd.DataFrame(rows).sort_values(["effective_from", "severity"], ignore_index=True)

    def rule_id_on(self, dates: pd.Series) -> pd.Series:
        """Vectorised: id of the rule set in force on each date."""
        rules = sorted(self.doc["publicity_rules"], key=lambda r: r["effective_from"])
        bounds = pd.to_datetime([str(r["effective_from"]) for r in rules])
        idx = bounds.searchsorted(pd.to_datetime(dates), side="right") - 1
        idx = idx.clip(0, None)
        ids = pd.Series([r["id"] for r in rules])
        return pd.Series(ids.to_numpy()[idx], index=dates.index)
