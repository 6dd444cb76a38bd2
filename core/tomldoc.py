"""Every TOML document the service reads (blueprints, sources, the configuration file) goes
through `loads` here, which refuses what would make the standard parser blow up before parsing.

Why: `tomllib` spends time and memory quadratic in the number of dotted parts of one key (for a
key of k parts it builds the k prefixes of the key, each up to k long, and walks them all):
200 KB of `a.a.a…` is 100,000 parts, tens of GB, and it OOM-killed an API worker. With the parts
of one key bounded, the parser's cost is linear in the document again, so the document is bounded
too (tomllib parses 2 to 5 MB per CPU second on these machines).

The check is a single cheap pass that skips strings and comments and counts the dots between two
structural characters (`=`, `,`, brackets, braces, newline): the parts of a key or table header.
A value can hold a dot too (`1.5`, a date's fraction), which counts as one part of its own run.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

# A blueprint of 10,000 packages is under 500 KB; 2 MiB leaves room and costs tomllib at most about
# a CPU second (the scan here a fraction of that).
MAX_TOML_CHARS = 2 * 1024 * 1024
# Blueprints and the configuration use at most 3 (`customizations.kernel.append`); 16 is generous
# and keeps a key's prefixes at 16² entries.
MAX_KEY_PARTS = 16

# What the scan stops at: a dot, the start of a string or comment, or a run of structural characters.
_NEXT = re.compile(r"[.\"'#]|[=,\[\]{}\n]+")
# From a dot on: the rest of a run of bare-key characters, dots and blanks (counted in one go).
_DOTTED_RUN = re.compile(r"[.A-Za-z0-9_+:\- \t]*+")
# Strings, each cut short at the end of the document (and single-line ones at the end of the
# line): the parser says what is wrong with an unterminated one. Possessive, so never backtracking.
_STRINGS = {
    '"""': re.compile(r'"""(?:[^"\\]++|\\.|"(?!""))*+(?:"{3,5})?', re.DOTALL),
    "'''": re.compile(r"'''(?:[^']++|'(?!''))*+(?:'{3,5})?"),
    '"': re.compile(r'"(?:[^"\\\n]++|\\.)*+"?'),
    "'": re.compile(r"'[^'\n]*+'?"),
}


class TOMLLimitError(tomllib.TOMLDecodeError):
    """A document refused before parsing because parsing it would cost too much."""


def loads(text: str) -> dict[str, Any]:
    """`tomllib.loads` after `check_limits`; both raise `tomllib.TOMLDecodeError` (a ValueError)."""
    check_limits(text)
    return tomllib.loads(text)


def check_limits(text: str) -> None:
    """Refuse a document over `MAX_TOML_CHARS` or a key of more than `MAX_KEY_PARTS` parts."""
    if len(text) > MAX_TOML_CHARS:
        raise TOMLLimitError(f"the TOML document is {len(text)} characters long; "
                             f"at most {MAX_TOML_CHARS} are accepted")
    pos, dots, end = 0, 0, len(text)
    while pos < end:
        m = _NEXT.search(text, pos)
        if m is None:
            return
        start, char = m.start(), m.group()[0]
        if char == ".":
            run = _DOTTED_RUN.match(text, start)
            assert run is not None  # the pattern matches the empty string too
            dots += run.group().count(".")
            if dots >= MAX_KEY_PARTS:
                line = text.count("\n", 0, start) + 1
                raise TOMLLimitError(f"line {line}: a key has more than {MAX_KEY_PARTS} dotted "
                                     f"parts; at most {MAX_KEY_PARTS} are accepted")
            pos = run.end()
        elif char == "#":
            newline = text.find("\n", start)
            pos = end if newline < 0 else newline
        elif char in "\"'":
            kind = char * 3 if text.startswith(char * 3, start) else char
            string = _STRINGS[kind].match(text, start)
            assert string is not None  # every pattern matches its opening quote
            pos = string.end()
        else:
            dots, pos = 0, m.end()
