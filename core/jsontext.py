"""Reading JSON that a client sent: only what Go's decoder (osbuild-composer's) would read.

Python's `json` module accepts more than JSON: `NaN`, `Infinity` and `-Infinity` literals, and a
number such as `1e400` that overflows to an infinite float.  Code further on cannot do anything
sensible with those (`int(nan)` raises, a size of infinity means nothing), and osbuild-composer
refuses them as invalid JSON, so they are refused here, while parsing.  Deep nesting
(`[[[[…` 100,000 levels) exhausts Python's recursion limit inside the parser, and a 5,000-digit
integer hits Python's integer conversion limit; both become the same parse error, so every caller
answers a 400 with its own Weldr error instead of a 500.
"""

from __future__ import annotations

import json
import math
from typing import Any


class JSONTextError(ValueError):
    """The text is not JSON a client may send; the message says why (the parser's words)."""


def _refuse_constant(name: str) -> Any:
    raise JSONTextError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONTextError(f"the number {text[:40]} is out of range")
    return value


def loads(text: str | bytes) -> Any:
    """`json.loads` without NaN/Infinity, overflowing numbers, or a crash on deep nesting.

    Raises `JSONTextError` (a ValueError) for anything that does not parse.
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except JSONTextError:
        raise
    except RecursionError:
        raise JSONTextError("the document is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and int()'s digit limit on a huge integer
        raise JSONTextError(str(exc)) from None
