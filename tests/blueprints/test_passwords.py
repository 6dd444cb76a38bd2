"""SHA-512 crypt against the specification's published test vectors and glibc's crypt(3)."""

from __future__ import annotations

import contextlib
import tracemalloc
import warnings

import pytest

from core.passwords import (
    MAX_PASSWORD_BYTES,
    PasswordTooLong,
    hash_password,
    is_crypted,
    new_salt,
    sha512_crypt,
)

# From "Unix crypt using SHA-256 and SHA-512" (U. Drepper), the SHA-512 test vectors.
SPEC_VECTORS = [
    ("$6$saltstring", "Hello world!",
     "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
    ("$6$rounds=10000$saltstringsaltstring", "Hello world!",
     "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."),
    ("$6$rounds=5000$toolongsaltstring", "This is just a test",
     "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"),
    ("$6$rounds=1400$anotherlongsaltstring", "a very much longer text to encrypt.  This one even stretches over morethan one line.",
     "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"),
    ("$6$rounds=77777$short", "we have a short salt string but not a short password",
     "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"),
    ("$6$rounds=10$roundstoolow", "the minimum number is still observed",
     "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."),
]


@pytest.mark.parametrize("setting,password,expected", SPEC_VECTORS)
def test_spec_vectors(setting, password, expected):
    assert sha512_crypt(password, setting) == expected


def test_same_as_glibc_crypt_for_edge_lengths():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # the C library's implementation, as a second reference
        except ImportError:
            pytest.skip("the crypt module is not in this Python (removed in 3.13)")
    for password in ["", "x", "a" * 63, "b" * 64, "c" * 65, "d" * 200, "e" * MAX_PASSWORD_BYTES, "ünïcødé ☃", "tab\tnew\nline"]:
        setting = "$6$" + new_salt()
        assert sha512_crypt(password, setting) == crypt.crypt(password, setting), password


def test_hash_password_uses_fresh_salt_and_default_rounds():
    a, b = hash_password("secret"), hash_password("secret")
    assert a != b
    for h in (a, b):
        assert h.startswith("$6$") and "rounds=" not in h
        _, _, salt, digest = h.split("$")
        assert len(salt) == 16 and len(digest) == 86
        assert sha512_crypt("secret", f"$6${salt}") == h


def test_is_crypted_prefixes():
    assert is_crypted("$6$abc$def") and is_crypted("$5$x$y") and is_crypted("$2b$10$zzz")
    assert not is_crypted("plain") and not is_crypted("$1$md5$old") and not is_crypted("")


def test_bad_setting_refused():
    with pytest.raises(ValueError):
        sha512_crypt("x", "$5$salt")


def _peak_bytes(fn, *args) -> int:
    """Peak bytes Python allocated while `fn(*args)` ran (tracemalloc), whether it raised or not."""
    tracemalloc.start()
    try:
        with contextlib.suppress(PasswordTooLong):
            fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_linear_in_the_password_length():
    """The spec's P sequence once built `password * len(password)`: 511² = 261 KB here, 900 MiB
    for 30 KB. Feeding the digest the password n times instead keeps a 511-byte one small."""
    password = "p" * MAX_PASSWORD_BYTES
    peak = _peak_bytes(sha512_crypt, password, "$6$saltstring")
    assert peak < 32 * MAX_PASSWORD_BYTES, peak


def test_a_100_kb_password_is_refused_without_allocating():
    """A 100 KB password left a worker at 9.4 GB; now it is refused with a clear message."""
    with pytest.raises(PasswordTooLong, match="100000 bytes long; at most 511"):
        hash_password("x" * 100_000)
    peak = _peak_bytes(hash_password, "x" * 100_000)
    assert peak < 1024 * 1024, peak  # the password itself and its UTF-8 copy, nothing quadratic


def test_the_bound_counts_utf8_bytes():
    assert sha512_crypt("é" * 255, "$6$salt")  # 510 bytes
    with pytest.raises(PasswordTooLong):
        sha512_crypt("é" * 256, "$6$salt")  # 512 bytes
