"""Reading the YAML/JSON files multusctl is given."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml


class FileError(Exception):
    """A file that cannot be read or parsed; the message names it."""


@dataclasses.dataclass(frozen=True)
class Document:
    path: str
    index: int
    body: Any

    @property
    def label(self) -> str:
        body = self.body if isinstance(self.body, dict) else {}
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        name = (meta or {}).get("name") or body.get("name") or f"#{self.index}"
        kind = body.get("kind") or ("MultusConf" if "type" in body else "?")
        return f"{kind}/{name}"


def load(path: str) -> list[Document]:
    """Every document of a (multi-document) YAML or JSON file; empty ones skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FileError(f"{path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise FileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        bodies = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise FileError(f"{path}: invalid YAML: {exc}") from exc
    except RecursionError:
        raise FileError(f"{path}: invalid YAML: nested too deeply") from None
    return [Document(path, i, body) for i, body in enumerate(bodies) if body is not None]


def load_all(paths: list[str]) -> list[Document]:
    docs: list[Document] = []
    for path in paths:
        docs += load(path)
    return docs


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (rendered confs) as literal blocks, readable in review."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def dump_yaml(body: Any) -> str:
    return yaml.dump(body, Dumper=_BlockDumper, sort_keys=False, width=100)
