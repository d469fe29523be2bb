"""Configuration as versioned data: where it lives, how it is read, and its content hash.

A version is the sha256 of the document's canonical JSON (sorted keys, no whitespace), so
renaming or re-indenting a file does not change it but any change of meaning does.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
# Versioned configuration (catalogue, policy, agencies). An installed package points here with
# CREDIT_CONFIG_DIR; a checkout uses its own config/ folder.
CONFIG_DIR = Path(os.environ.get("CREDIT_CONFIG_DIR") or REPO_ROOT / "config")


def canonical_json(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def content_hash(obj) -> str:
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


# libyaml's safe loader when present (10-50x faster; the same documents — every step of every
# night reads the catalogue and the policy), else the pure-Python one.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# Limits for a configuration document: a policy file may come from outside (``policy promote``).
# Aliases are shared by the loader but expanded by everything after it (hashing, copying): nested
# aliases ("billion laughs") would exhaust memory, so their count and the expanded size are bounded.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
MAX_ALIASES = 100
MAX_EXPANDED_NODES = 2_000_000


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and line."""


def _read_limited(path: Path | str) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_DOCUMENT_BYTES:,} bytes")
    return data


def load_document(path: Path | str) -> dict:
    data = _read_limited(path)
    try:
        doc = copy.deepcopy(_parse(data))  # callers may change their copy
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise ConfigError(f"{path}: not a YAML document ({type(exc).__name__})") from None
    except _TooLarge as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return doc


class _TooLarge(ValueError):
    pass


@lru_cache(maxsize=64)
def _parse(data: bytes):
    text = data.decode("utf-8")
    aliases = sum(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=_LOADER))
    if aliases > MAX_ALIASES:
        raise _TooLarge(f"{aliases:,} YAML aliases (at most {MAX_ALIASES})")
    doc = yaml.load(text, Loader=_LOADER)
    _expanded_size(doc)
    return doc


def _expanded_size(doc) -> int:
    """Nodes of the document with every alias expanded, counted with shared parts counted once
    per use (as JSON would write them), refused beyond ``MAX_EXPANDED_NODES``."""
    sizes: dict[int, int] = {}

    def size(node) -> int:
        if isinstance(node, dict):
            items = [v for kv in node.items() for v in kv]
        elif isinstance(node, list):
            items = node
        else:
            return 1
        if id(node) not in sizes:
            sizes[id(node)] = 1 + sum(size(v) for v in items)
            if sizes[id(node)] > MAX_EXPANDED_NODES:
                raise _TooLarge(f"expands to more than {MAX_EXPANDED_NODES:,} values (aliases)")
        return sizes[id(node)]

    return size(doc)


def candidate_signals() -> dict:
    """What a calibration candidate may give points to besides the catalogue items."""
    return load_document(CONFIG_DIR / "candidate_signals.yaml")["signals"]


def coverage_targets() -> dict[str, float]:
    """The run report's coverage target per evaluation class."""
    return {
        k: float(v)
        for k, v in load_document(CONFIG_DIR / "coverage_targets.yaml")["targets"].items()
    }


class Positions:
    """Line numbers of a YAML document's nodes, by path (keys and list indexes)."""

    def __init__(self, node):
        self.node = node

    def line(self, path: tuple) -> int:
        node, best = self.node, self.node
        for step in path:
            nxt = None
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if k.value == str(step):
                        nxt = v
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
                if 0 <= step < len(node.value):
                    nxt = node.value[step]
            if nxt is None:
                break
            node = best = nxt
        return (best.start_mark.line + 1) if best is not None else 1


def load_with_lines(path: Path | str) -> tuple[dict, Positions]:
    """A YAML mapping and the line of each of its nodes, for errors that name file and line.
    Unreadable or malformed YAML is a ConfigError naming the file (and line, where YAML says)."""
    try:
        data = _read_limited(path)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    try:
        doc = copy.deepcopy(_parse(data))  # within the size and alias limits
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (_TooLarge, RecursionError) as exc:
        raise ConfigError(f"{path}: {exc or type(exc).__name__}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})"
        ) from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}:1: expected a mapping at the top level")
    return doc, Positions(node)
