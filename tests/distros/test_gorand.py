"""distros.gorand reproduces Go's math/rand call for call.

The expected values were printed by Go 1.27's `rand.New(rand.NewSource(seed))` (and google/uuid
semantics for the UUIDs); seed 1 gives the sequence Go's documentation examples are known for.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from distros.gorand import GoRand, fnv1_64, manifest_seed, rng_cooked, uuid4, volid
from tests.golden import load_case

# seed -> Int63, Int63, Uint64, Int31, Intn(100), Intn(1<<40), Int31n(7), Int63n(1000),
#         Read(16), Read(3), Read(16), Uint32 (after one more Int63)
GO = {
    0: (8717895732742165505, 2259404117704393152, 6050128673802995827, 116702506, 15, 964734437551, 5, 456,
        "511455780875d64ee2d3d0d0de6bf8f9", "b44ce8", "5ff044c6b1f83b8e883bbf857aab99c5", 2615979505),
    1: (5577006791947779410, 8674665223082153551, 15352856648520921629, 939984059, 81, 575745648856, 3, 148,
        "a0072939487f6999eb9d18a44784045d", "87f3c6", "7cf22746e995af5a25367951baa2ff6c", 1366049456),
    -5: (1811683815564572222, 4427849682616757295, 188166459856594692, 866272638, 1, 366107940663, 5, 178,
         "46f21c69b798c680efdb3c4df0b69c53", "f1f9ce", "47d527bbdb3a1042951b2e43d107ba5d", 2162157180),
    1 << 40: (5470237361722394362, 6322525149314491254, 1177463506020107830, 364506073, 45, 782624851413, 6, 729,
              "2fb276ccee9f3ff1da03f75fc07b2acf", "b0d571", "041b8e5acc1b89360da31095ab4c8150", 1779340044),
}


def test_cooked_table_is_data_with_607_words() -> None:
    words = rng_cooked()
    assert len(words) == 607
    assert words[0] == -4181792142133755926 % (1 << 64)
    assert words[-1] == 4152330101494654406


@pytest.mark.parametrize("seed", sorted(GO))
def test_same_numbers_and_bytes_as_go(seed: int) -> None:
    r = GoRand(seed)
    got = (r.int63(), r.int63(), r.uint64(), r.int31(), r.intn(100), r.intn(1 << 40), r.int31n(7),
           r.int63n(1000), r.read(16).hex(), r.read(3).hex(), r.read(16).hex())
    r.int63()
    assert got + (r.uint32(),) == GO[seed]


def test_seed_is_taken_modulo_2_31_minus_1_like_go() -> None:
    assert GoRand(2147483647).int63() == GoRand(0).int63()


def test_uuid4_and_volid_follow_images_draws() -> None:
    """images' newRandomUUIDFromReader reads 16 bytes and sets version 4 / variant 10."""
    r = GoRand(0)
    assert uuid4(r) == "0194fdc2-fa2f-4cc0-81d3-ff12045b73c8"
    # the 5 bytes left of the third Int63 are used first (Go's Read keeps them)
    assert volid(r) == "6E4F-F95F"


def test_manifest_seed_is_images_seed_arg() -> None:
    """cmdutil.SeedArgFor: seed + FNV-1 64 of distro, arch and config name, as int64."""
    assert fnv1_64(b"rhel-9.6", b"x86_64", b"empty") == 1086803906326971544
    assert manifest_seed(0, "rhel-9.6", "x86_64", "empty") == 1086803906326971544
    assert manifest_seed(0, "a", "b", "c") == fnv1_64(b"abc") - (1 << 64 if fnv1_64(b"abc") >> 63 else 0)


_IDENTIFIER = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
                         r"|\b[0-9A-F]{4}-[0-9A-F]{4}\b")


def test_engine_draws_osbuild_composers_identifiers_for_its_golden_cases(golden_dir: Path) -> None:
    """osbuild-composer made its golden manifests with seed 0 and Go's math/rand: with the same
    draws in the same order the engine writes the very same UUIDs and FAT serials, unnormalized
    (table, payloads depth first, GPT partitions last).  Only for releases that keep the July-2023
    definitions: for the others today's tables no longer fix partition and ESP identifiers."""
    import distros
    from distros.cases import manifest_for_case

    checked = 0
    for path in sorted(golden_dir.glob("*.json.xz")):
        case = load_case(path)
        if distros.get_distro(case["compose-request"]["distro"]).definition.follows == "images":
            continue
        want = list(dict.fromkeys(_IDENTIFIER.findall(json.dumps(case["manifest"]))))
        got = list(dict.fromkeys(_IDENTIFIER.findall(json.dumps(manifest_for_case(case)))))
        assert got == want, path.name
        checked += bool(want)
    assert checked >= 3
