"""distros.fieldorder: stage options come out in osbuild/images' struct field order."""

from __future__ import annotations

from distros.fieldorder import order_manifest


def test_struct_fields_in_declaration_order_and_maps_sorted() -> None:
    manifest = {"version": "2", "pipelines": [{"name": "os", "stages": [
        {"type": "org.osbuild.rpm", "inputs": {}, "options": {"kernel_install_env": {}, "gpgkeys.fromtree": ["/k"],
                                                              "gpgkeys": ["K"]}},
        {"type": "org.osbuild.chmod", "options": {"items": {"/b": {"mode": "0755"}, "/a": {"mode": "0700"}}}},
        {"type": "org.osbuild.kickstart", "options": {"network": [{"onboot": "on", "bootproto": "dhcp",
                                                                   "activate": True}]}},
        {"type": "org.osbuild.unknown", "options": {"z": 1, "a": 2}},
    ]}], "sources": {}}
    out = order_manifest(manifest)
    rpm, chmod, ks, unknown = out["pipelines"][0]["stages"]
    assert list(rpm) == ["type", "inputs", "options"]
    assert list(rpm["options"]) == ["gpgkeys", "gpgkeys.fromtree", "kernel_install_env"]
    assert list(chmod["options"]["items"]) == ["/a", "/b"]
    assert list(ks["options"]["network"][0]) == ["activate", "bootproto", "onboot"]
    assert list(unknown["options"]) == ["z", "a"]        # stages without a table keep their order
    assert list(out) == ["version", "pipelines", "sources"]
    # the input is not modified
    assert list(manifest["pipelines"][0]["stages"][1]["options"]["items"]) == ["/b", "/a"]
