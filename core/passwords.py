"""SHA-512 crypt (`$6$`) of user passwords, written from Ulrich Drepper's public specification.

Why our own: osbuild-composer stores blueprint user passwords hashed, never in plain text, and the
image's /etc/shadow needs the glibc `$6$` format. Python's `crypt` module is deprecated (gone in
3.13) and depends on the C library; this is a pure-Python implementation of the published
algorithm ("Unix crypt using SHA-256 and SHA-512", 2007), checked against the spec's test vectors.

Cost: the spec's "P" sequence adds the password to a digest once per password byte, so time is
quadratic in the length; memory stays linear here (the digest is fed the password n times, never
a string of n copies). Length is bounded by `MAX_PASSWORD_BYTES`, which is what the image's own
libcrypt can check anyway.
"""

from __future__ import annotations

import hashlib
import re
import secrets

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ROUNDS_DEFAULT = 5000
ROUNDS_MIN = 1000
ROUNDS_MAX = 999_999_999
SALT_MAX = 16

# libxcrypt (the libcrypt of Fedora and RHEL 8+) refuses a passphrase of CRYPT_MAX_PASSPHRASE_SIZE
# (512) bytes or more, its NUL included: pam_unix could never check a longer password at login,
# and osbuild-composer, which hashes through the host's libcrypt, cannot hash one either. The bound
# also keeps the quadratic "P" step small (511² bytes hashed, ~0.3 ms).
MAX_PASSWORD_BYTES = 511


class PasswordTooLong(ValueError):
    """A plain-text password longer than `MAX_PASSWORD_BYTES` (UTF-8 bytes)."""

    def __init__(self, length: int):
        super().__init__(f"the password is {length} bytes long; at most {MAX_PASSWORD_BYTES} are "
                         "allowed (the longest passphrase libxcrypt, which checks it at login, accepts)")
        self.length = length


def _group_order() -> list[tuple[int, int, int]]:
    """The spec's byte order for the final encoding: 21 groups of three digest bytes (then byte 63).

    Each group (a, b, c) is followed by (b + 1, c + 1, a + 1): (0, 21, 42), (22, 43, 1), ...
    """
    order = []
    a, b, c = 0, 21, 42
    for _ in range(21):
        order.append((a, b, c))
        a, b, c = b + 1, c + 1, a + 1
    return order


_GROUPS = _group_order()

# Passwords already crypted are stored as given (the same prefixes osbuild-composer accepts).
_CRYPTED_PREFIXES = ("$2b$", "$6$", "$5$")
_SETTING = re.compile(r"^\$6\$(?:rounds=(\d+)\$)?([^$]*)")


def is_crypted(password: str) -> bool:
    return password.startswith(_CRYPTED_PREFIXES)


def _b64_24bit(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(_ITOA64[w & 0x3F])
        w >>= 6
    return "".join(out)


def _repeat_to(digest: bytes, length: int) -> bytes:
    return (digest * (length // len(digest) + 1))[:length]


def sha512_crypt(password: str | bytes, setting: str) -> str:
    """The `$6$` hash of `password` for `setting` (`$6$salt` or `$6$rounds=N$salt`)."""
    m = _SETTING.match(setting)
    if not m:
        raise ValueError("setting must start with $6$")
    rounds_custom = m.group(1) is not None
    rounds = int(m.group(1)) if rounds_custom else ROUNDS_DEFAULT
    rounds = max(ROUNDS_MIN, min(ROUNDS_MAX, rounds))
    salt = m.group(2).encode("utf-8")[:SALT_MAX]
    pw = password.encode("utf-8") if isinstance(password, str) else password
    if len(pw) > MAX_PASSWORD_BYTES:
        raise PasswordTooLong(len(pw))

    digest_b = hashlib.sha512(pw + salt + pw).digest()
    ctx_a = hashlib.sha512(pw + salt)
    remaining = len(pw)
    while remaining > 64:
        ctx_a.update(digest_b)
        remaining -= 64
    ctx_a.update(digest_b[:remaining])
    bits = len(pw)
    while bits > 0:
        ctx_a.update(digest_b if bits & 1 else pw)
        bits >>= 1
    digest_a = ctx_a.digest()

    ctx_p = hashlib.sha512()
    for _ in range(len(pw)):  # the spec: "for every byte in the password add the password"
        ctx_p.update(pw)
    p_seq = _repeat_to(ctx_p.digest(), len(pw))
    s_seq = _repeat_to(hashlib.sha512(salt * (16 + digest_a[0])).digest(), len(salt))

    c = digest_a
    for i in range(rounds):
        ctx = hashlib.sha512()
        ctx.update(p_seq if i & 1 else c)
        if i % 3:
            ctx.update(s_seq)
        if i % 7:
            ctx.update(p_seq)
        ctx.update(c if i & 1 else p_seq)
        c = ctx.digest()

    encoded = "".join(_b64_24bit(c[a], c[b], c[z], 4) for a, b, z in _GROUPS)
    encoded += _b64_24bit(0, 0, c[63], 2)
    prefix = f"$6$rounds={rounds}$" if rounds_custom else "$6$"
    return f"{prefix}{salt.decode('utf-8', 'replace')}${encoded}"


def new_salt(length: int = SALT_MAX) -> str:
    return "".join(secrets.choice(_ITOA64) for _ in range(length))


def hash_password(password: str) -> str:
    """A fresh `$6$` hash with a random 16-character salt and the default 5000 rounds."""
    return sha512_crypt(password, "$6$" + new_salt())
