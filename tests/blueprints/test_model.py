"""The blueprint model without a server: decoding, the schema of every customization, the
rules applied on save, TOML output, diff and freeze."""

from __future__ import annotations

import json
import random
import tomllib

import pytest

from core import blueprint as model
from core.blueprint import BAD_REQUEST, BlueprintError
from core.passwords import sha512_crypt

FULL_TOML = '''
name = "full"
description = "Every customization osbuild/blueprint knows"
version = "1.2.3"
distro = "centos-9"
architecture = "x86_64"
unknown_top_level = "dropped"

[[packages]]
name = "tmux"
version = "*"

[[packages]]
name = "httpd"
version = "2.4.*"

[[modules]]
name = "util-linux"
version = "*"

[[groups]]
name = "anaconda-tools"

[[enabled_modules]]
name = "nodejs"
stream = "20"

[[containers]]
source = "quay.io/fedora/fedora:latest"
tls-verify = false

[customizations]
hostname = "base"
installation_device = "/dev/vda"
partitioning_mode = "lvm"
fips = true

[customizations.kernel]
name = "kernel-debug"
append = "nosmt=force"

[[customizations.sshkey]]
user = "root"
key = "ssh-ed25519 AAAA root@host"

[[customizations.user]]
name = "admin"
description = "Administrator"
password = "plain-secret"
key = "ssh-ed25519 AAAA admin@host"
home = "/srv/admin/"
shell = "/usr/bin/bash"
groups = ["wheel", "users"]
uid = 1200
gid = 1200
expiredate = 12345
force_password_reset = true

[[customizations.user]]
name = "hashed"
password = "$6$abc$already"

[[customizations.group]]
name = "widget"
gid = 1130

[customizations.timezone]
timezone = "US/Eastern"
ntpservers = ["0.north-america.pool.ntp.org"]

[customizations.locale]
languages = ["en_US.UTF-8"]
keyboard = "us"

[customizations.firewall]
ports = ["22:tcp", "80:tcp"]

[customizations.firewall.services]
enabled = ["ftp"]
disabled = ["telnet"]

[[customizations.firewall.zones]]
name = "trusted"
sources = ["192.0.2.0/24"]

[customizations.services]
enabled = ["sshd"]
disabled = ["postfix"]
masked = ["rpcbind"]

[[customizations.filesystem]]
mountpoint = "/var"
size = "2 GiB"

[[customizations.filesystem]]
mountpoint = "/opt"
minsize = 1073741824

[customizations.disk]
type = "gpt"
minsize = "20 GiB"

[[customizations.disk.partitions]]
type = "plain"
minsize = "1 GiB"
mountpoint = "/data"
fs_type = "xfs"
label = "data"

[[customizations.disk.partitions]]
type = "lvm"
name = "mainvg"
minsize = "10 GiB"

[[customizations.disk.partitions.logical_volumes]]
name = "rootlv"
mountpoint = "/"
minsize = "5 GiB"
fs_type = "ext4"

[customizations.fdo]
manufacturing_server_url = "http://127.0.0.1:8080"
diun_pub_key_hash = "sha256:abc"

[customizations.openscap]
datastream = "/usr/share/xml/scap/ssg/content/ssg-rhel9-ds.xml"
profile_id = "xccdf_org.ssgproject.content_profile_cis"

[customizations.openscap.tailoring]
selected = ["a"]
unselected = ["b"]

[customizations.ignition.firstboot]
url = "http://127.0.0.1/ignition.json"

[[customizations.directories]]
path = "/etc/widget"
user = "root"
group = 0
mode = "0755"
ensure_parents = true

[[customizations.files]]
path = "/etc/widget/conf"
mode = "0644"
data = """line one
line "two" with a \\\\ backslash"""

[[customizations.repositories]]
id = "example"
baseurls = ["http://127.0.0.1/repo"]
gpgcheck = false
install_from = true

[customizations.installer]
unattended = true
sudo-nopasswd = ["admin"]

[customizations.installer.kickstart]
contents = "text --non-interactive"

[customizations.rpm.import_keys]
files = ["/etc/pki/rpm-gpg/RPM-GPG-KEY"]

[customizations.rhsm.config.dnf_plugins.product_id]
enabled = true

[customizations.rhsm.config.subscription_manager.rhsm]
manage_repos = false

[customizations.cacerts]
pem_certs = ["-----BEGIN CERTIFICATE-----"]

[customizations.containers-storage]
destination-path = "/usr/share/containers/storage"

[[customizations.firstboot.scripts]]
type = "custom"
name = "hello"
contents = "echo hello"

[[customizations.firstboot.scripts]]
type = "aap"
job_template_url = "http://127.0.0.1/job"
host_config_key = "key"

[customizations.dnf.config]
set_releasever = true

[customizations.iso]
volume_id = "MY_ISO-1"

[customizations.sshd]
password_authentication = false
client_alive_interval = 30
'''


def decode_toml(text: str) -> dict:
    return model.decode(text, model.TOML_TYPE)


def bad_request(text: str, ctype: str = model.TOML_TYPE) -> str:
    with pytest.raises(BlueprintError) as info:
        model.decode(text, ctype)
    assert info.value.error_id == "BlueprintsError"
    assert info.value.msg.startswith(BAD_REQUEST), info.value.msg
    return info.value.msg[len(BAD_REQUEST):]


# --- decoding and the schema --------------------------------------------------------------------


def test_full_blueprint_decodes_every_customization():
    bp = decode_toml(FULL_TOML)
    assert list(bp) == ["name", "description", "version", "packages", "modules", "enabled_modules",
                        "groups", "containers", "customizations", "distro", "architecture"]
    c = bp["customizations"]
    assert set(c) == {"hostname", "kernel", "sshkey", "user", "group", "timezone", "locale",
                      "firewall", "services", "filesystem", "disk", "installation_device",
                      "partitioning_mode", "fdo", "openscap", "ignition", "directories", "files",
                      "repositories", "fips", "installer", "rpm", "rhsm", "cacerts",
                      "containers-storage", "firstboot", "dnf", "iso", "sshd"}
    # osbuild-composer's field order, not the document's
    assert list(c)[:4] == ["hostname", "kernel", "sshkey", "user"]
    assert c["filesystem"] == [{"mountpoint": "/var", "minsize": 2 * 1024**3},
                               {"mountpoint": "/opt", "minsize": 1024**3}]
    assert c["disk"]["minsize"] == 20 * 1024**3
    assert c["disk"]["partitions"][1]["logical_volumes"][0]["minsize"] == 5 * 1024**3
    assert c["directories"][0] == {"path": "/etc/widget", "user": "root", "group": 0,
                                   "mode": "0755", "ensure_parents": True}
    assert c["repositories"][0]["install_from"] is True
    assert bp["containers"] == [{"source": "quay.io/fedora/fedora:latest", "tls-verify": False}]
    assert "unknown_top_level" not in bp


def test_json_and_toml_give_the_same_blueprint():
    from_toml = decode_toml(FULL_TOML)
    from_json = model.decode(json.dumps(tomllib.loads(FULL_TOML)), model.JSON_TYPE)
    assert from_toml == from_json


def test_defaults_osbuild_composer_initialises():
    bp = model.initialize(decode_toml('name = "x"'))
    assert bp == {"name": "x", "version": "0.0.0", "packages": [], "modules": [],
                  "enabled_modules": [], "groups": [], "distro": ""}


def test_json_nulls_mean_absent():
    bp = model.initialize(model.decode(json.dumps({
        "name": "x", "version": None, "packages": None, "description": None,
        "customizations": {"hostname": None, "user": [{"name": "a", "password": None}]}}),
        model.JSON_TYPE))
    assert bp["version"] == "0.0.0" and bp["packages"] == [] and "description" not in bp
    assert bp["customizations"] == {"user": [{"name": "a"}]}


def test_order_of_packages_is_kept():
    bp = decode_toml('name="x"\n[[packages]]\nname="zsh"\n[[packages]]\nname="bash"\n'
                     '[[packages]]\nname="Acl"\n')
    assert [p["name"] for p in bp["packages"]] == ["zsh", "bash", "Acl"]


@pytest.mark.parametrize("doc,fragment", [
    ('name = "x"\npackages = "tmux"', "packages: Not a valid list."),
    ('name = 5', "name: Not a valid string."),
    ('name="x"\n[[customizations.user]]\nname="a"\nuid="1"', "customizations.user.0.uid: Not a valid integer."),
    ('name="x"\n[[customizations.user]]\nname="a"\nuid=1.5', "customizations.user.0.uid: Not a valid integer."),
    ('name="x"\n[[customizations.user]]\nuid=1', "customizations.user.0.name: Missing data for required field."),
    ('name="x"\n[customizations]\nfips="yes"', "customizations.fips: Not a valid boolean."),
    ('name="x"\n[[customizations.filesystem]]\nmountpoint="/var"', "minsize must be greater than 0"),
    ('name="x"\n[[customizations.filesystem]]\nmountpoint="/var"\nsize=1\nminsize=2',
     "size and minsize cannot both be set"),
    ('name="x"\n[[customizations.filesystem]]\nmountpoint="/var"\nsize="2 parsecs"', "is not a valid size"),
    ('name="x"\n[[customizations.filesystem]]\nmountpoint="var"\nsize=1', "must be an absolute path"),
    ('name="x"\n[[customizations.filesystem]]\nmountpoint="/var/../etc"\nsize=1', "canonical path"),
    ('name="x"\n[[customizations.disk.partitions]]\ntype="zfs"\nminsize=1', "unknown partition type: zfs"),
    ('name="x"\n[[customizations.disk.partitions]]\nmountpoint="/x"', "minsize: Missing data"),
    ('name="x"\n[[customizations.disk.partitions]]\ntype="lvm"\nminsize=1\nmountpoint="/x"',
     "unknown field(s) for a partition of type 'lvm': mountpoint"),
    ('name="x"\n[customizations.disk]\ntype="mbr"', "unknown partition table type: mbr"),
    ('name="x"\n[customizations.disk]\nsector_size=1000', "sector_size must be a power of 2"),
    ('name="x"\n[[customizations.directories]]\npath="/etc/x"\nmode="999"', "invalid mode 999"),
    ('name="x"\n[[customizations.directories]]\npath="/etc/x/"', "must be a canonical path"),
    ('name="x"\n[[customizations.files]]\npath="/etc/x"\nuser=-1', "-1 is negative"),
    ('name="x"\n[[customizations.files]]\npath="/etc/x"\ndata="a"\nuri="file:///b"', "cannot specify both"),
    ('name="x"\n[[customizations.repositories]]\nid="r"', "base URL, mirrorlist or metalink is required"),
    ('name="x"\n[[customizations.repositories]]\nid="r"\nbaseurls=["http://127.0.0.1"]\ngpgcheck=true',
     "no gpg keys are provided"),
    ('name="x"\n[[customizations.repositories]]\nid="r/x"\nbaseurls=["http://127.0.0.1"]', "filename"),
    ('name="x"\n[[customizations.firstboot.scripts]]\ntype="custom"', "missing contents field"),
    ('name="x"\n[[customizations.firstboot.scripts]]\ntype="bogus"', "missing or invalid type field"),
    ('name="x"\n[[customizations.firstboot.scripts]]\ntype="satellite"\ncommand="x"\ncontents="y"',
     "unknown field(s) for a satellite firstboot script: contents"),
    ('name="x"\n[customizations.iso]\nvolume_id="a b"', "invalid volume id"),
    ('name="x"\n[customizations]\npartitioning_mode="zfs"', "invalid partitioning mode 'zfs'"),
    ('name="x"\n[[customizations.group]]\nname="a"\n[[customizations.group]]\nname="a"', "duplicate group name: a"),
    ('name="x"\n[[customizations]]\nhostname="legacy"', "customizations"),
    ('name="x"\n[[customizations.user]]\nname="a"\nuid=99999999999999999999', "Number out of range."),
    ('name="x"\n[[groups]]\nname=""', "groups.0.name: Shorter than minimum length 1."),
    ('name="x"\n[[customizations.user]]\nname=""', "customizations.user.0.name: Shorter than minimum length 1."),
])
def test_schema_refuses(doc, fragment):
    assert fragment in bad_request(doc)


def test_syntax_errors_and_content_types():
    assert bad_request('name = "x', model.TOML_TYPE).startswith("invalid TOML")
    assert bad_request('{"name": ', model.JSON_TYPE).startswith("invalid JSON")
    assert bad_request('["a"]', model.JSON_TYPE).startswith("a blueprint must be a table/object")
    assert bad_request('name="x"', "text/plain") == "blueprint must be in json or toml format"
    assert bad_request('name="x"', "text/x-toml; charset=utf-8") == \
        "blueprint must be in json or toml format"
    with pytest.raises(BlueprintError, match="^missing Content-Type header$"):
        model.decode('name="x"', None)
    with pytest.raises(BlueprintError, match="^Missing blueprint$"):
        model.decode("", model.JSON_TYPE)


def test_deep_nesting_is_an_error_not_a_crash():
    deep = "[" * 100_000 + "]" * 100_000
    bad_request('{"name": "x", "packages": ' + deep + "}", model.JSON_TYPE)


# --- save rules ---------------------------------------------------------------------------------


def test_initialize_name_rules():
    with pytest.raises(BlueprintError, match="^empty blueprint name not allowed$"):
        model.initialize(decode_toml('description = "no name"'))
    for bad in ("has space", "slash/x", "..", "ünï"):
        with pytest.raises(BlueprintError) as info:
            model.initialize({"name": bad})
        assert info.value.error_id == "InvalidChars"
    assert model.initialize({"name": "A-z_0.9"})["name"] == "A-z_0.9"


@pytest.mark.parametrize("version,ok", [
    ("0.0.1", True), ("10.20.30", True), ("1.0.0-alpha.1", True), ("1.0.0+build.5", True),
    ("1.0", False), ("1", False), ("a.b.c", False), ("1.0.0.0", False), ("v1.0.0", False)])
def test_version_must_be_semver(version, ok):
    if ok:
        assert model.initialize({"name": "x", "version": version})["version"] == version
    else:
        with pytest.raises(BlueprintError) as info:
            model.initialize({"name": "x", "version": version})
        assert info.value.msg.startswith("Invalid 'version', must use Semantic Versioning: ")


def test_next_version_rules():
    assert model.next_version(None, None) == "0.0.0"
    assert model.next_version("0.1.0", None) == "0.1.0"
    assert model.next_version("0.1.0", "0.1.0") == "0.1.1"
    assert model.next_version(None, "0.1.0") == "0.1.1"
    assert model.next_version("", "1.2.3-rc.1") == "1.2.4"
    assert model.next_version("0.0.5", "0.1.0") == "0.0.5"  # a different version is kept
    assert model.next_version(None, "not-semver") == "not-semver"


def test_passwords_hashed_crypted_kept_empty_dropped():
    bp = model.initialize(decode_toml(
        'name="x"\n[[customizations.user]]\nname="a"\npassword="pw"\n'
        '[[customizations.user]]\nname="b"\npassword="$6$s$already"\n'
        '[[customizations.user]]\nname="c"\npassword=""\n'))
    a, b, c = bp["customizations"]["user"]
    salt = a["password"].split("$")[2]
    assert a["password"] == sha512_crypt("pw", f"$6${salt}")
    assert b["password"] == "$6$s$already"
    assert "password" not in c


def test_package_without_name_refused():
    with pytest.raises(BlueprintError, match="Entry #2 has version '1.0' but no name"):
        model.initialize({"name": "x", "packages": [{"name": "a"}, {"version": "1.0"}]})


# --- output -------------------------------------------------------------------------------------


def test_toml_round_trip_and_layout():
    bp = model.initialize(decode_toml(FULL_TOML))
    text = model.to_toml(bp)
    assert "[[packages]]" in text and "[[customizations.user]]" in text
    assert "[[customizations.disk.partitions.logical_volumes]]" in text
    assert "packages = [" not in text  # tables, not an inline array
    assert text.index('name = "full"') < text.index("[[packages]]")
    again = model.initialize(decode_toml(text))
    assert again == bp


def test_toml_of_empty_lists_and_odd_strings():
    bp = model.initialize({"name": "x", "description": 'quote " back \\ tab \t uni ☃ """ end\nline'})
    text = model.to_toml(bp)
    assert tomllib.loads(text)["description"] == bp["description"]
    assert tomllib.loads(text)["packages"] == []
    assert "distro" not in tomllib.loads(text)


def test_toml_strings_round_trip_whatever_they_hold():
    """Descriptions, kickstarts and file contents come back from TOML exactly as stored."""
    rng = random.Random(7)
    pieces = ["a", '"', "'", "\\", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "☃", "\U0001F600",
              '"""', "'''", " ", "\u2028", "\ufeff", "\b", "\\u", '""', "\\\n"]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        bp = model.initialize({"name": "x", "description": text,
                               "customizations": {"files": [{"path": "/a", "data": text}],
                                                  "timezone": {"ntpservers": [text]}}})
        back = tomllib.loads(model.to_toml(bp))
        assert back["description"] == text
        assert back["customizations"]["files"][0]["data"] == text
        assert back["customizations"]["timezone"].get("ntpservers", [""]) == [text]


def test_json_text_round_trip():
    bp = model.initialize(decode_toml(FULL_TOML))
    assert model.from_stored(model.to_json_text(bp)) == bp
    assert list(model.from_stored(model.to_json_text(bp))) == list(bp)
    with pytest.raises(ValueError):
        model.from_stored('{"no": "name"}')


# --- diff, requests, freeze ---------------------------------------------------------------------


def test_diff_shape_and_order():
    old = model.initialize({"name": "x", "version": "0.0.1", "description": "d",
                            "packages": [{"name": "tmux", "version": "*"}, {"name": "vim", "version": "1"}],
                            "groups": [{"name": "g"}],
                            "customizations": {"hostname": "a",
                                               "user": [{"name": "u", "shell": "/bin/sh"}]}})
    new = model.initialize({"name": "x", "version": "0.0.2", "description": "d",
                            "packages": [{"name": "vim", "version": "2"}, {"name": "Zsh"}, {"name": "acl"}],
                            "modules": [{"name": "m"}],
                            "customizations": {"user": [{"name": "u", "shell": "/bin/bash"}]}})
    assert model.diff(old, new) == [
        {"old": {"Version": "0.0.1"}, "new": {"Version": "0.0.2"}},
        {"old": None, "new": {"Module": {"name": "m"}}},
        {"old": None, "new": {"Package": {"name": "acl"}}},
        {"old": None, "new": {"Package": {"name": "Zsh"}}},
        {"old": {"Package": {"name": "tmux", "version": "*"}}, "new": None},
        {"old": {"Package": {"name": "vim", "version": "1"}}, "new": {"Package": {"name": "vim", "version": "2"}}},
        {"old": {"Group": {"name": "g"}}, "new": None},
        {"old": {"Customizations.hostname": "a"}, "new": None},
        {"old": {"Customizations.user": {"name": "u", "shell": "/bin/sh"}},
         "new": {"Customizations.user": {"name": "u", "shell": "/bin/bash"}}},
    ]
    assert model.diff(new, new) == []


def test_package_requests_like_osbuild_composer():
    bp = {"name": "x", "packages": [{"name": "tmux", "version": "*"}, {"name": "httpd", "version": "2.4.*"}],
          "modules": [{"name": "util-linux"}], "groups": [{"name": "core"}]}
    assert model.package_requests(bp) == ["tmux", "httpd-2.4.*", "util-linux", "@core", "kernel"]
    bp["customizations"] = {"kernel": {"name": "kernel-rt"}}
    assert model.package_requests(bp)[-1] == "kernel-rt"
    assert model.package_requests(bp, bootable=False)[-1] == "@core"


DEPS = [
    {"name": "bash", "epoch": 0, "version": "5.1.8", "release": "6.el9", "arch": "x86_64"},
    {"name": "python3", "epoch": 0, "version": "3.9.18", "release": "1.el9", "arch": "x86_64"},
    {"name": "python3-libs", "epoch": 0, "version": "3.9.18", "release": "1.el9", "arch": "x86_64"},
    {"name": "util-linux", "epoch": 2, "version": "2.37.4", "release": "15.el9", "arch": "x86_64"},
]


def test_freeze_pins_versions_and_expands_globs():
    bp = {"name": "x", "version": "0.0.1", "packages": [{"name": "bash", "version": "*"},
                                                          {"name": "python3*", "version": "*"}],
          "modules": [{"name": "util-linux", "version": "*"}]}
    frozen = model.freeze(bp, DEPS)
    assert frozen["version"] == "0.0.1"
    assert frozen["packages"] == [{"name": "bash", "version": "5.1.8-6.el9.x86_64"},
                                  {"name": "python3", "version": "3.9.18-1.el9.x86_64"},
                                  {"name": "python3-libs", "version": "3.9.18-1.el9.x86_64"}]
    assert frozen["modules"] == [{"name": "util-linux", "version": "2:2.37.4-15.el9.x86_64"}]
    assert bp["packages"][0]["version"] == "*"  # the original is untouched
    with pytest.raises(BlueprintError, match="^tmux missing from depsolve results$"):
        model.freeze({"name": "x", "packages": [{"name": "tmux"}]}, DEPS)


def test_nevra_entry_epoch_is_an_integer():
    assert model.nevra_entry({**DEPS[3], "epoch": "2", "checksum": "sha256:x"}) == {
        "name": "util-linux", "epoch": 2, "version": "2.37.4", "release": "15.el9", "arch": "x86_64"}
