"""Compare two manifests up to their random identifiers, with a readable difference.

Filesystem and partition UUIDs come from a seeded generator; two manifests of the same request are
the same image when they are equal after each identifier is replaced by a placeholder numbered in
order of first appearance, consistently on each side.  Identifiers are: RFC 4122-shaped UUIDs (any
case, also inside strings such as `luks.uuid=...` kernel options), FAT volume serials (`XXXX-XXXX`,
and the same serial without the dash as `volid`), `0x`-prefixed DOS disk identifiers in a `uuid`
field, and LUKS device names made of a UUID's first four characters (`luks-6e4f`).  Nothing else
is rewritten.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_FAT = re.compile(r"^[0-9A-F]{4}-[0-9A-F]{4}$")
_DOS = re.compile(r"^0x[0-9a-f]{8}$")
_UUID_IN = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_LUKS_NAME = re.compile(r"^luks-([0-9a-f]{4})$")


def normalize(manifest: Any) -> Any:
    names: dict[str, str] = {}
    uuids = sorted({m.group(0).lower() for m in _UUID_IN.finditer(json.dumps(manifest))})

    def placeholder(key: str) -> str:
        if key not in names:
            names[key] = f"<ID-{len(names) + 1}>"
        return names[key]

    def derived(name: str) -> str:
        # device names made from a UUID's first characters (`luks-6e4f`) follow their UUID
        m = _LUKS_NAME.match(name)
        if m:
            full = next((u for u in uuids if u.startswith(m.group(1))), None)
            if full is not None:
                return "luks-" + placeholder(full)
        return name

    def walk(node: Any, key: str | None = None) -> Any:
        if isinstance(node, dict):
            return {derived(k): walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        if isinstance(node, str):
            if _UUID.match(node):
                return placeholder(node.lower())
            if _LUKS_NAME.match(node):
                return derived(node)
            if _UUID_IN.search(node):
                # UUIDs inside option strings, e.g. kernel command lines with luks.uuid=
                return _UUID_IN.sub(lambda m: placeholder(m.group(0).lower()), node)
            if _FAT.match(node):
                return placeholder(node.replace("-", ""))
            if key == "volid" and re.fullmatch(r"[0-9A-Fa-f]{8}", node):
                return placeholder(node.upper())
            if key == "uuid" and _DOS.match(node):
                return placeholder(node)
        return node

    return walk(manifest)


def diff(expected: Any, actual: Any, context: int = 3) -> str:
    """Unified diff of the normalized JSON texts ("" when equal)."""
    a = json.dumps(normalize(expected), indent=1, sort_keys=True).splitlines()
    b = json.dumps(normalize(actual), indent=1, sort_keys=True).splitlines()
    if a == b:
        return ""
    return "\n".join(difflib.unified_diff(a, b, "expected", "generated", n=context, lineterm=""))
