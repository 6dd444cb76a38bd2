"""distros.gojson writes what Go's json.MarshalIndent(v, "", "  ") writes (expected text printed by Go 1.27)."""

from __future__ import annotations

import pytest

from distros.gojson import go_float, go_string, manifest_bytes, marshal_indent

GO_TEXT = r'''{
  "b": true,
  "e": {},
  "floats": [
    0,
    1,
    -1,
    0.5,
    1e-7,
    1.5e-7,
    0.000001,
    123456789.125,
    10000000000000000,
    123450000000000000000,
    1e+21,
    1.5e+22,
    -2.5e-10,
    0.1,
    100000,
    3.14159,
    0.00001,
    0.000123
  ],
  "l": [],
  "n": {
    "a": [
      1,
      "x",
      {}
    ],
    "b": 1
  },
  "s": "a\u003cb\u003e\u0026c\u2028\u2029\u0001\u007f\b\f\n\r\t\"\\é€😀",
  "z": null
}'''


def test_marshal_indent_matches_go_byte_for_byte() -> None:
    value = {
        "floats": [0.0, 1.0, -1.0, 0.5, 1e-7, 1.5e-7, 1e-6, 123456789.125, 1e16, 1.2345e20, 1e21, 1.5e22,
                   -2.5e-10, 0.1, 100000.0, 3.14159, 1e-5, 0.000123],
        "s": "a<b>&c\u2028\u2029\x01\x7f\b\f\n\r\t\"\\é€😀",
        "e": {}, "l": [], "z": None, "b": True, "n": {"b": 1, "a": [1, "x", {}]},
    }
    # Go sorts map keys; the encoder keeps dict order unless asked to sort
    assert marshal_indent(value, sort_keys=True) == GO_TEXT.replace("\\u007f", "\x7f")


def test_dict_order_is_kept_as_struct_field_order() -> None:
    assert marshal_indent({"version": "2", "pipelines": []}) == '{\n  "version": "2",\n  "pipelines": []\n}'


def test_manifest_file_has_final_newline() -> None:
    assert manifest_bytes({"a": "<"}) == b'{\n  "a": "\\u003c"\n}\n'


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_unsupported_floats_are_refused(value: float) -> None:
    with pytest.raises(ValueError):
        go_float(value)


def test_html_characters_in_keys_are_escaped_too() -> None:
    assert go_string("a&b") == '"a\\u0026b"'
