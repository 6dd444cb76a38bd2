"""Go's `math/rand` generator, so that seeded identifiers come out as osbuild/images makes them.

osbuild/images draws every random identifier of a manifest (filesystem, partition, LUKS and btrfs
UUIDs, FAT volume serials, a Vagrant box's MAC address) from `rand.New(rand.NewSource(seed))`.
A manifest is byte-identical to images' only if the same words come out in the same order, so this
module reproduces Go's source exactly: the additive lagged Fibonacci generator (Mitchell and Reeds)
with 607 words of state, tap 273, seeded through a Lehmer generator (x' = 48271·x mod 2³¹−1) XORed
with Go's `rngCooked` table (read from `distros/data/go_rng_cooked.json`, not code), and the
`rand.Rand` methods on top of it that images uses.

`uuid4` and `volid` are how images turns those bytes into identifiers (google/uuid's
`NewRandomFromReader`: 16 bytes, version and variant bits set; `disk.NewVolIDFromRand`: 4 bytes as
`XXXX-XXXX`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

RNG_LEN = 607
RNG_TAP = 273
INT32_MAX = (1 << 31) - 1
MASK63 = (1 << 63) - 1
MASK64 = (1 << 64) - 1
COOKED_FILE = Path(__file__).parent / "data" / "go_rng_cooked.json"


@lru_cache(maxsize=1)
def rng_cooked() -> tuple[int, ...]:
    """Go's 607 seeding words, as unsigned 64-bit values."""
    words = json.loads(COOKED_FILE.read_text())["rngCooked"]
    if len(words) != RNG_LEN:
        raise ValueError(f"{COOKED_FILE}: {len(words)} words, want {RNG_LEN}")
    return tuple(w & MASK64 for w in words)


def _seedrand(x: int) -> int:
    """One step of the Lehmer generator that spreads the seed (Schrage's method, as Go has it)."""
    hi, lo = divmod(x, 44488)       # x stays in 1..2³¹-2, so floor division is Go's truncation
    x = 48271 * lo - 3399 * hi
    if x < 0:
        x += INT32_MAX
    return x


def _to_int64(v: int) -> int:
    v &= MASK64
    return v - (1 << 64) if v >> 63 else v


@lru_cache(maxsize=64)
def _seeded_state(seed: int) -> tuple[int, ...]:
    seed = _to_int64(seed) % INT32_MAX          # Python's % is already non-negative here
    if seed == 0:
        seed = 89482311
    cooked = rng_cooked()
    vec = [0] * RNG_LEN
    x = seed
    for i in range(-20, RNG_LEN):
        x = _seedrand(x)
        if i >= 0:
            u = x << 40
            x = _seedrand(x)
            u ^= x << 20
            x = _seedrand(x)
            u ^= x
            vec[i] = (u ^ cooked[i]) & MASK64
    return tuple(vec)


class GoRand:
    """`rand.New(rand.NewSource(seed))`: the same numbers and bytes, call for call."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._vec = list(_seeded_state(seed))
        self._tap = 0
        self._feed = RNG_LEN - RNG_TAP
        # Read() keeps the unused bytes of its last Int63 between calls
        self._read_val = 0
        self._read_pos = 0

    def uint64(self) -> int:
        self._tap -= 1
        if self._tap < 0:
            self._tap += RNG_LEN
        self._feed -= 1
        if self._feed < 0:
            self._feed += RNG_LEN
        x = (self._vec[self._feed] + self._vec[self._tap]) & MASK64
        self._vec[self._feed] = x
        return x

    def int63(self) -> int:
        return self.uint64() & MASK63

    def uint32(self) -> int:
        return self.int63() >> 31

    def int31(self) -> int:
        return self.int63() >> 32

    def int63n(self, n: int) -> int:
        if n <= 0:
            raise ValueError("invalid argument to int63n")
        if n & (n - 1) == 0:
            return self.int63() & (n - 1)
        limit = MASK63 - (1 << 63) % n
        v = self.int63()
        while v > limit:
            v = self.int63()
        return v % n

    def int31n(self, n: int) -> int:
        if n <= 0:
            raise ValueError("invalid argument to int31n")
        if n & (n - 1) == 0:
            return self.int31() & (n - 1)
        limit = INT32_MAX - (1 << 31) % n
        v = self.int31()
        while v > limit:
            v = self.int31()
        return v % n

    def intn(self, n: int) -> int:
        if n <= 0:
            raise ValueError("invalid argument to intn")
        return self.int31n(n) if n <= INT32_MAX else self.int63n(n)

    def read(self, n: int) -> bytes:
        """`Rand.Read`: 7 bytes per Int63, low byte first; leftovers serve the next call."""
        out = bytearray(n)
        pos, val = self._read_pos, self._read_val
        for i in range(n):
            if pos == 0:
                val = self.int63()
                pos = 7
            out[i] = val & 0xFF
            val >>= 8
            pos -= 1
        self._read_pos, self._read_val = pos, val
        return bytes(out)


def uuid4(rng: GoRand) -> str:
    """google/uuid `NewRandomFromReader(rng)`: a version-4 UUID, lower case."""
    b = bytearray(rng.read(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def volid(rng: GoRand) -> str:
    """images' `disk.NewVolIDFromRand`: a FAT serial `XXXX-XXXX` from 4 bytes."""
    h = rng.read(4).hex().upper()
    return f"{h[:4]}-{h[4:]}"


def fnv1_64(*parts: bytes) -> int:
    """FNV-1 (not 1a) 64-bit hash of the concatenated parts, as Go's `hash/fnv.New64`."""
    h = 0xCBF29CE484222325
    for part in parts:
        for byte in part:
            h = (h * 0x100000001B3) & MASK64
            h ^= byte
    return h


def manifest_seed(base_seed: int, distro: str, arch: str, config_name: str) -> int:
    """images' `cmdutil.SeedArgFor`: the test seed plus the FNV-1 hash of distro, arch and config
    name (int64 wrap-around), so every distro/arch/config gets its own stream."""
    return _to_int64(base_seed + fnv1_64(distro.encode(), arch.encode(), config_name.encode()))
