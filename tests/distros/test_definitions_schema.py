"""The definitions loader refuses unknown keys and wrong types, naming the file and the key (issue 11,
class 13): four typos (`no_blss`, `rpm_option`, `image_confg`, `ostre`) once loaded silently and
changed the manifest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from distros.definitions import DEFS_DIR, DefinitionError, load_distros, load_image_types_file


def defs_with(tmp_path: Path, filename: str, edit) -> Path:
    """A copy of distros/defs with one file's loaded data changed by `edit` (anchors expanded)."""
    for f in DEFS_DIR.iterdir():
        if f.suffix == ".yaml":
            shutil.copy(f, tmp_path / f.name)
    data = yaml.safe_load((tmp_path / filename).read_text())
    edit(data)
    (tmp_path / filename).write_text(yaml.safe_dump(data))
    return tmp_path


@pytest.mark.parametrize("typo, meant", [("no_blss", "no_bls"), ("rpm_option", "rpm_options"),
                                         ("image_confg", "image_config"), ("ostre", "ostree")])
def test_image_type_typos_name_file_and_key(tmp_path: Path, typo: str, meant: str) -> None:
    defs = defs_with(tmp_path, "el.yaml", lambda d: d["image_types"]["qcow2"].update({typo: {}}))
    with pytest.raises(DefinitionError) as err:
        load_image_types_file("el.yaml", defs)
    assert str(err.value) == f"el.yaml: image_types.qcow2: unknown key {typo!r} (did you mean {meant!r}?)"


def test_unknown_keys_deep_inside_are_found(tmp_path: Path) -> None:
    def edit(d: dict) -> None:
        d["partition_tables"]["default"]["x86_64"]["partitions"][1]["payload"]["mountpont"] = "/boot"
    # (the ESP is shared by the arches through a YAML anchor: the first arch holding it is named)
    with pytest.raises(DefinitionError, match=r"el8.yaml: partition_tables.default.\w+.partitions\[\d\].payload: "
                                              r"unknown key 'mountpont' \(did you mean 'mountpoint'\?\)"):
        load_image_types_file("el8.yaml", defs_with(tmp_path, "el8.yaml", edit))


def test_conditions_are_checked_against_the_node_they_change(tmp_path: Path) -> None:
    def edit(d: dict) -> None:
        d["image_types"]["qcow2"]["conditions"] = [{"when": {"version_gte": "9"}, "merge": {"disabled": True}}]
    with pytest.raises(DefinitionError, match=r"image_types.qcow2.conditions\[0\].when: unknown condition 'version_gte'"):
        load_image_types_file("el.yaml", defs_with(tmp_path, "el.yaml", edit))

    def edit2(d: dict) -> None:
        d["image_types"]["qcow2"]["image_config"]["conditions"] = [{"when": {"arch": "x86_64"},
                                                                   "merge": {"kernel_option": ["ro"]}}]
    with pytest.raises(DefinitionError, match=r"conditions\[0\].merge: unknown key 'kernel_option' "
                                              r"\(did you mean 'kernel_options'\?\)"):
        load_image_types_file("el.yaml", defs_with(tmp_path, "el.yaml", edit2))


def test_conditions_in_a_reused_list_are_checked(tmp_path: Path) -> None:
    def edit(d: dict) -> None:
        d["image_types"]["vhd"]["image_config"]["conditions"] = [[{"when": {"arch": "x86_64"},
                                                                    "merge": {"kernel_option": ["ro"]}}]]
    # (vhd's image config is shared through an anchor: the first type holding it is named)
    with pytest.raises(DefinitionError, match=r"image_types.[\w-]+.image_config.conditions\[0\]\[0\].merge: "
                                              r"unknown key 'kernel_option'"):
        load_image_types_file("el.yaml", defs_with(tmp_path, "el.yaml", edit))


def test_wrong_types_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match=r"image_types.qcow2.bootable: expected bool, got str 'yes'"):
        load_image_types_file("el.yaml", defs_with(tmp_path, "el.yaml",
                                                   lambda d: d["image_types"]["qcow2"].update(bootable="yes")))
    with pytest.raises(DefinitionError, match=r"image_types.qcow2.exports: expected a list"):
        load_image_types_file("fedora.yaml", defs_with(tmp_path, "fedora.yaml",
                                                       lambda d: d["image_types"]["qcow2"].update(exports="qcow2")))


def test_distros_file_is_checked(tmp_path: Path) -> None:
    defs = defs_with(tmp_path, "distros.yaml", lambda d: d["distros"][0].update(defualt_fs_type="xfs"))
    with pytest.raises(DefinitionError, match=r"distros.yaml: distros\[0\]: unknown key 'defualt_fs_type' "
                                              r"\(did you mean 'default_fs_type'\?\)"):
        load_distros(defs)


def test_the_shipped_definitions_are_valid() -> None:
    load_distros(DEFS_DIR)
    for name in ("el.yaml", "el8.yaml", "fedora.yaml", "test.yaml"):
        load_image_types_file(name, DEFS_DIR)


def test_pipeline_keys_are_the_kinds(tmp_path: Path) -> None:
    """A built-in kind takes the keys of distros/schema.py PIPELINE; a kind of its own declares
    more in PipelineKind.spec_keys (tests/distros/test_engine.py test_new_pipeline_kind...)."""
    def edit(d: dict) -> None:
        d["image_types"]["qcow2"]["pipelines"][3]["formatt"] = {"type": "qcow2"}
    with pytest.raises(DefinitionError, match=r"image_types.qcow2.pipelines\[3\]: unknown key 'formatt' "
                                              r"\(did you mean 'format'\?\)"):
        load_image_types_file("el.yaml", defs_with(tmp_path, "el.yaml", edit))
