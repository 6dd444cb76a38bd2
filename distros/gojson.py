"""JSON exactly as Go's `json.MarshalIndent(v, "", "  ")` writes it (osbuild/images' manifests).

Byte identity with images' manifest files needs Go's encoder, which differs from Python's `json`:

- `<`, `>` and `&` are written `\\u003c`, `\\u003e`, `\\u0026` (Go escapes HTML by default), and
  U+2028 / U+2029 always as `\\u2028` / `\\u2029`; other non-ASCII text stays as it is;
- control characters: `\\b \\f \\n \\r \\t` short, the rest `\\u00XX` (lower-case hex), as Python;
- floats as ES6 number-to-string (`1e-7`, `1e+21`, `100000` not `100000.0`);
- empty objects and arrays are `{}` and `[]`; indentation of two spaces and `": "`.

Object keys are written in the dict's order: Go writes struct fields in declaration order and map
keys sorted, and which of the two a dict stands for is the producer's business (the engine builds
its dicts in images' struct order and sorts what images keeps in maps).  `sort_keys=True` sorts
every object, for dicts that are all maps.
"""

from __future__ import annotations

import json
import math
from typing import Any

_encode_str = json.encoder.encode_basestring  # type: ignore[attr-defined]  # JSON string, non-ASCII kept
_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
               ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def go_string(s: str) -> str:
    """A quoted JSON string as Go's encoder (with HTML escaping) writes it."""
    out = _encode_str(s)
    for raw, escaped in _GO_ESCAPES:
        if raw in out:
            out = out.replace(raw, escaped)
    return out


def _digits(a: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of a positive float and the position of the point
    (value = 0.DIGITS × 10^point); Python's repr and Go's strconv agree on the digits."""
    r = repr(a)
    mantissa, _, exp = r.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) + int(exp or 0) - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    return digits, point


def go_float(f: float) -> str:
    """encoding/json's float64: ES6 style, fixed notation unless |f| < 1e-6 or |f| ≥ 1e21."""
    if math.isinf(f) or math.isnan(f):
        raise ValueError(f"json: unsupported value: {f}")
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    sign = "-" if f < 0 else ""
    digits, point = _digits(abs(f))
    if 1e-6 <= abs(f) < 1e21:
        if point <= 0:
            return sign + "0." + "0" * -point + digits
        if point >= len(digits):
            return sign + digits + "0" * (point - len(digits))
        return sign + digits[:point] + "." + digits[point:]
    exp = point - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}" if exp >= 0 else f"{sign}{mantissa}e-{abs(exp)}"


def _encode(v: Any, indent: str, out: list[str], sort_keys: bool) -> None:
    if isinstance(v, str):
        out.append(go_string(v))
    elif isinstance(v, dict):
        if not v:
            out.append("{}")
            return
        inner = indent + "  "
        out.append("{")
        first = True
        items = sorted(v.items()) if sort_keys else v.items()
        for key, value in items:
            out.append("\n" if first else ",\n")
            first = False
            out.append(inner)
            out.append(go_string(key if isinstance(key, str) else str(key)))
            out.append(": ")
            _encode(value, inner, out, sort_keys)
        out.append("\n" + indent + "}")
    elif isinstance(v, (list, tuple)):
        if not v:
            out.append("[]")
            return
        inner = indent + "  "
        out.append("[")
        first = True
        for value in v:
            out.append("\n" if first else ",\n")
            first = False
            out.append(inner)
            _encode(value, inner, out, sort_keys)
        out.append("\n" + indent + "]")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif v is None:
        out.append("null")
    elif isinstance(v, int):
        out.append(str(v))
    elif isinstance(v, float):
        out.append(go_float(v))
    else:
        raise TypeError(f"json: unsupported type: {type(v).__name__}")


def marshal_indent(v: Any, *, sort_keys: bool = False) -> str:
    """`json.MarshalIndent(v, "", "  ")`, without the newline images' gen-manifests appends."""
    out: list[str] = []
    _encode(v, "", out, sort_keys)
    return "".join(out)


def manifest_bytes(manifest: Any) -> bytes:
    """A manifest file as images' gen-manifests writes it: MarshalIndent plus a final newline."""
    return (marshal_indent(manifest) + "\n").encode()
