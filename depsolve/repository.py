"""Repository definitions, variable substitution, and metalink/mirrorlist → one baseurl.

A repository reaches the depsolver from three places with three spellings: osbuild/images'
repository lists (`name`, `baseurl` string, `gpgkey`), Weldr sources (`id`, `type`, `url`,
`check_ssl`, `gpgkeys`), and osbuild's solver requests (`id`, `baseurl` list, `gpgcheck`).
`Repository.from_dict` reads all of them into one frozen value.

Every package is pinned by its own URL, so a repository given by a metalink or mirrorlist is
resolved to one concrete baseurl when its metadata is fetched; that baseurl is what the
`remote_location` of its packages starts with, and it is recorded in the metadata cache.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from core.records import Record, replace
from depsolve.errors import RepositoryError

# Every arch an RPM may be built for → the `$basearch` of repository URLs.
_BASEARCH_GROUPS: dict[str, tuple[str, ...]] = {
    "aarch64": ("aarch64",),
    "armhfp": ("armv6hl", "armv7hl", "armv7hnl", "armv8hl"),
    "arm": ("armv5tejl", "armv5tel", "armv5tl", "armv6l", "armv7l", "armv8l"),
    "i386": ("i386", "athlon", "geode", "i486", "i586", "i686"),
    "loongarch64": ("loongarch64",),
    "noarch": ("noarch",),
    "ppc": ("ppc",),
    "ppc64": ("ppc64", "ppc64iseries", "ppc64p7", "ppc64pseries"),
    "ppc64le": ("ppc64le",),
    "riscv64": ("riscv64",),
    "s390": ("s390",),
    "s390x": ("s390x",),
    "x86_64": ("x86_64", "amd64", "ia32e"),
}
BASEARCH: dict[str, str] = {arch: base for base, arches in _BASEARCH_GROUPS.items() for arch in arches}

# dnf's default when a repository says nothing (48 h) is too long for a build service whose
# users expect a new package to show up; the service passes its configured default instead.
DEFAULT_METADATA_EXPIRE = 6 * 3600
NEVER = -1

_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def basearch(arch: str) -> str:
    """The `$basearch` of an arch (`i686` → `i386`); unknown arches stand for themselves."""
    return BASEARCH.get(arch, arch)


def parse_duration(value: Any) -> int | None:
    """Seconds from dnf's `metadata_expire` spellings: 3600, "20s", "6h", "2d", "never", -1."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"invalid metadata_expire: {value!r}")
    if isinstance(value, (int, float)):
        return NEVER if value < 0 else int(value)
    text = str(value).strip().lower()
    if text == "never":
        return NEVER
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"invalid metadata_expire: {value!r}")
    number = float(match.group(1))
    if number < 0:
        return NEVER
    return int(number * _UNITS[match.group(2)])


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """Replace `$var` and `${var}` as dnf does; unknown variables stay as written."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))

    return _VARIABLE.sub(one, text)


def _as_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value.strip() else ()
    return tuple(str(v) for v in value if v)


class Repository(Record, frozen=True):
    """One RPM repository as the depsolver needs it.

    Exactly one of `baseurl` (tried in order, like mirrors), `metalink` or `mirrorlist` is the
    source of its metadata.  `check_gpg` is copied onto every package it provides.
    """

    id: str
    baseurl: tuple[str, ...] = ()
    metalink: str | None = None
    mirrorlist: str | None = None
    name: str = ""
    gpgkeys: tuple[str, ...] = ()
    check_gpg: bool = False
    check_repogpg: bool = False
    sslverify: bool = True
    proxy: str | None = None
    metadata_expire: int | None = None
    module_hotfixes: bool = False
    rhsm: bool = False

    def __post_init__(self) -> None:
        if not self.id:
            raise RepositoryError("repository definition without an id or name")
        if isinstance(self.baseurl, str):
            object.__setattr__(self, "baseurl", (self.baseurl,))
        if not (self.baseurl or self.metalink or self.mirrorlist):
            raise RepositoryError(
                f"repository '{self.id}' has none of baseurl, metalink or mirrorlist",
                repo_id=self.id)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Repository":
        """Read an images repository entry, a Weldr source (v0 or v1) or an osbuild solver repo."""
        if not isinstance(data, Mapping):
            raise RepositoryError(f"repository definition must be an object, not {type(data).__name__}")
        repo_id = str(data.get("id") or data.get("name") or "")
        baseurl = _as_list(data.get("baseurl"))
        metalink = data.get("metalink") or None
        mirrorlist = data.get("mirrorlist") or None
        source_type = data.get("type")
        url = data.get("url")
        if source_type and url:
            if source_type == "yum-baseurl":
                baseurl = baseurl or (str(url),)
            elif source_type == "yum-metalink":
                metalink = metalink or str(url)
            elif source_type == "yum-mirrorlist":
                mirrorlist = mirrorlist or str(url)
            else:
                raise RepositoryError(f"repository '{repo_id}': unknown source type {source_type!r}",
                                      repo_id=repo_id)
        gpgkeys = _as_list(data.get("gpgkeys")) + _as_list(data.get("gpgkey")) \
            + _as_list(data.get("gpgkey_urls"))
        check_gpg = data.get("check_gpg", data.get("gpgcheck", False))
        check_repogpg = data.get("check_repogpg", data.get("repo_gpgcheck", False))
        sslverify = data.get("sslverify", data.get("check_ssl", True))
        try:
            expire = parse_duration(data.get("metadata_expire"))
        except ValueError as exc:
            raise RepositoryError(f"repository '{repo_id}': {exc}", repo_id=repo_id) from None
        return cls(
            id=repo_id,
            baseurl=baseurl,
            metalink=str(metalink) if metalink else None,
            mirrorlist=str(mirrorlist) if mirrorlist else None,
            name=str(data.get("name") or repo_id),
            gpgkeys=gpgkeys,
            check_gpg=bool(check_gpg),
            check_repogpg=bool(check_repogpg),
            sslverify=bool(True if sslverify is None else sslverify),
            proxy=str(data["proxy"]) if data.get("proxy") else None,
            metadata_expire=expire,
            module_hotfixes=bool(data.get("module_hotfixes", False)),
            rhsm=bool(data.get("rhsm", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The osbuild solver spelling; `from_dict(to_dict())` gives the same repository."""
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.baseurl:
            out["baseurl"] = list(self.baseurl)
        if self.metalink:
            out["metalink"] = self.metalink
        if self.mirrorlist:
            out["mirrorlist"] = self.mirrorlist
        out.update(gpgkeys=list(self.gpgkeys), check_gpg=self.check_gpg,
                   check_repogpg=self.check_repogpg, sslverify=self.sslverify,
                   module_hotfixes=self.module_hotfixes, rhsm=self.rhsm)
        if self.proxy:
            out["proxy"] = self.proxy
        if self.metadata_expire is not None:
            out["metadata_expire"] = self.metadata_expire
        return out

    def substituted(self, arch: str, releasever: str, extra: Mapping[str, str] | None = None
                    ) -> "Repository":
        """The same repository with `$arch`, `$basearch`, `$releasever` filled in its URLs."""
        variables = {"arch": arch, "basearch": basearch(arch)}
        if releasever:  # unknown, `$releasever` stays visible in the URL an error names
            variables["releasever"] = releasever
            variables["releasever_major"] = releasever.split(".")[0]
        variables.update(extra or {})
        return replace(
            self,
            baseurl=tuple(substitute(u, variables) for u in self.baseurl),
            metalink=substitute(self.metalink, variables) if self.metalink else None,
            mirrorlist=substitute(self.mirrorlist, variables) if self.mirrorlist else None,
        )

    @property
    def source_url(self) -> str:
        """The URL a user wrote for this repository, for error messages."""
        return self.metalink or self.mirrorlist or (self.baseurl[0] if self.baseurl else "")

    def cache_key(self) -> str:
        """Names the cache directory: the metadata source, not the id, decides what is shared."""
        # A signature-checked copy is never served to a definition that asks for the check
        # from a cache filled without it.
        ident = json.dumps([list(self.baseurl), self.metalink, self.mirrorlist, self.proxy or ""]
                           + (["repogpg"] if self.check_repogpg else []))
        digest = hashlib.sha256(ident.encode()).hexdigest()[:20]
        # A readable hint of the source for people browsing the cache; the digest decides.
        tail = [part for part in self.source_url.split("?")[0].split("/") if part][-2:]
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(tail))[:40] or "repo"
        return f"{slug}-{digest}"


# --- metalink / mirrorlist ------------------------------------------------------------------

_METALINK_NS = "{http://www.metalinker.org/}"
_USABLE_SCHEMES = ("https", "http", "file", "ftp")


class Mirrors(Record, frozen=True):
    """Candidate baseurls for a repository, best first, and the repomd.xml checksums to expect.

    A metalink lists the checksums of the current repomd.xml; a mirror serving another one is
    stale and skipped, as dnf does.
    """

    baseurls: tuple[str, ...]
    repomd_checksums: tuple[tuple[str, str], ...] = ()


def parse_metalink(data: bytes, source: str) -> Mirrors:
    """Mirrors of a metalink document: highest preference first, document order among equals."""
    import xml.etree.ElementTree as ET  # only metalinks need it: not on a warm run's path

    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(f"not a metalink document ({exc})") from None
    files = [f for f in root.iter(f"{_METALINK_NS}file") if f.get("name") == "repomd.xml"]
    if not files:
        raise ValueError("metalink lists no repomd.xml")
    node = files[0]
    checksums = tuple(
        (h.get("type", "").lower(), (h.text or "").strip().lower())
        for h in node.iter(f"{_METALINK_NS}hash")
        if h.get("type") and (h.text or "").strip()
    )
    ranked: list[tuple[int, int, str]] = []
    for index, url_node in enumerate(node.iter(f"{_METALINK_NS}url")):
        url = (url_node.text or "").strip()
        scheme = url.split(":", 1)[0].lower()
        if scheme not in _USABLE_SCHEMES:
            continue
        if not url.endswith("repodata/repomd.xml"):
            continue
        try:
            preference = int(url_node.get("preference", "0"))
        except ValueError:
            preference = 0
        ranked.append((-preference, index, url[: -len("repodata/repomd.xml")]))
    if not ranked:
        raise ValueError("metalink lists no usable mirror")
    ranked.sort()
    return Mirrors(tuple(url for _, _, url in ranked), checksums)


def parse_mirrorlist(data: bytes) -> Mirrors:
    """Mirrors of a mirrorlist: one URL per line, `#` comments, in the order given."""
    urls = []
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.split(":", 1)[0].lower() in _USABLE_SCHEMES:
            urls.append(line)
    if not urls:
        raise ValueError("mirrorlist lists no usable mirror")
    return Mirrors(tuple(urls))


def normalise_baseurl(url: str) -> str:
    """A baseurl ending in exactly one slash, so `baseurl + location_href` is a URL."""
    return url.rstrip("/") + "/"
