"""The marshmallow schema of a blueprint: every field osbuild-composer's blueprint knows, typed.

Why a schema and not a dict passed through: osbuild-composer decodes a pushed blueprint into Go
structs, so a wrong type (a string for `uid`, a table for `packages`) is refused at push time and
keys it does not know are dropped. Loading through this schema gives the same contract: the stored
blueprint holds only known keys, in osbuild-composer's field order, each of the right type, with
empty optional fields left out as Go's `omitempty` leaves them out of its JSON.

Checks that osbuild/blueprint makes while decoding (filesystem sizes, partition kinds, file and
directory modes, firstboot script kinds) are made here too; checks it leaves to compose time
(disk layout, repository sanity) are made here as well, because an invalid blueprint should be
refused when it is saved rather than when somebody builds it weeks later.
"""

from __future__ import annotations

import math
import posixpath
import re
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

# --- field kinds ------------------------------------------------------------------------------


class StrictBool(fields.Field):
    """Only true/false: marshmallow's Boolean would take "yes" or 1, Go's decoder does not."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("Not a valid boolean.")
        return value


class StrictInt(fields.Field):
    """A 64-bit integer, not a bool and not a float (Go refuses 1.5, true and 2**64 for an int)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("Not a valid integer.")
        if not -(2**63) <= value < 2**63:
            raise ValidationError("Number out of range.")
        return value


def _whole(value: float) -> float | int:
    """A float that is a whole number as an int; NaN, infinities (TOML `nan`/`inf`, JSON `NaN`,
    `1e400`) and fractions are refused, as Go's decoder refuses them for an integer."""
    if not math.isfinite(value):
        raise ValidationError(f"{value} is not a number of bytes or an id")
    if value != int(value):
        raise ValidationError(f"{value} is not a whole number")
    return int(value)


class IdOrName(fields.Field):
    """A user or group given by name or by a non-negative numeric id."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int | str:
        if isinstance(value, bool):
            raise ValidationError("must be a string or an integer")
        if isinstance(value, float):
            value = _whole(value)
        if isinstance(value, int):
            if value < 0:
                raise ValidationError(f"{value} is negative")
            return value
        if isinstance(value, str):
            if not _USER_NAME.match(value):
                raise ValidationError(f"invalid name {value!r}")
            return value
        raise ValidationError("must be a string or an integer")


_SIZE = re.compile(r"^\s*(\d{1,30})\s*([A-Za-z]*)\s*$")
_SIZE_UNITS = {"": 1, "B": 1, "kB": 1000, "KB": 1000, "KiB": 1024, "MB": 1000**2, "MiB": 1024**2,
               "GB": 1000**3, "GiB": 1024**3, "TB": 1000**4, "TiB": 1024**4}


def parse_size(value: Any) -> int:
    """A size in bytes from an integer or a string such as "20 GiB" (osbuild's data sizes)."""
    if isinstance(value, bool):
        raise ValidationError("must be an integer or a string")
    if isinstance(value, float):
        value = _whole(value)
    if isinstance(value, int):
        if value < 0:
            raise ValidationError("cannot be negative")
        if value >= 2**64:
            raise ValidationError("is too large (more than 64 bits)")
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if not m or m.group(2) not in _SIZE_UNITS:
            raise ValidationError(f"the size string {value!r} is not a valid size")
        size = int(m.group(1)) * _SIZE_UNITS[m.group(2)]
        if size >= 2**64:
            raise ValidationError(f"the size string {value!r} is too large (more than 64 bits)")
        return size
    raise ValidationError("must be an integer or a string")


class Size(fields.Field):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        return parse_size(value)


def Str(**kw: Any) -> fields.String:
    """A string; a required one must not be empty either (an empty group name would become
    the package spec "@" at depsolve time)."""
    if kw.get("required"):
        kw.setdefault("validate", validate.Length(min=1))
    return fields.String(**kw)


def StrList(**kw: Any) -> fields.List:
    return fields.List(fields.String(), **kw)


def NestedList(schema: type[Schema], **kw: Any) -> fields.List:
    return fields.List(fields.Nested(schema), **kw)


# metadata flags for how a loaded field is kept in the stored form
KEEP = {"keep": True}          # always present (Go field without omitempty)
OMIT_FALSE = {"omit_false": True}  # a plain Go bool/int with omitempty: false/0 is left out
# a Go pointer field with omitempty: left out only when not given (nil); given, it stays even
# when empty ("", {}, false, 0), so `services = {}` comes back as cockpit-composer expects
POINTER = {"pointer": True}


class Base(Schema):
    """Unknown keys are dropped (osbuild-composer ignores them); empty optional fields left out."""

    class Meta:
        unknown = EXCLUDE

    @post_load
    def _omit_empty(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        # keys come out by declaration order (osbuild-composer's field order, not the input's)
        # and under their document names (`tls-verify`, not the attribute `tls_verify`)
        out = {}
        for name, field in self.fields.items():
            if name not in data:
                continue
            value = data[name]
            meta = field.metadata
            if meta.get("pointer"):
                if value is None:
                    continue
            elif not meta.get("keep"):
                if value is None or value == "" or value == [] or value == {}:
                    continue
                if meta.get("omit_false") and value in (False, 0) and not isinstance(value, str):
                    continue
            out[field.data_key or name] = value
        return out


_USER_NAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}\$?$")
_MODE = re.compile(r"^0?[0-7]{3}$")


def _check_path(path: str, what: str) -> None:
    if not path.startswith("/"):
        raise ValidationError(f"{what} {path!r} must be an absolute path", "path")
    if posixpath.normpath(path) != path or path.startswith("//"):
        raise ValidationError(f"{what} {path!r} must be a canonical path "
                              f"(did you mean {posixpath.normpath(path)!r}?)", "path")


# --- top-level lists --------------------------------------------------------------------------


class PackageSchema(Base):
    name = Str()
    version = Str()


class EnabledModuleSchema(Base):
    name = Str(required=True)
    stream = Str()


class GroupSchema(Base):
    name = Str(required=True)


class ContainerSchema(Base):
    source = Str(required=True)
    name = Str()
    tls_verify = StrictBool(data_key="tls-verify", metadata=POINTER)
    local_storage = StrictBool(data_key="local-storage", metadata=OMIT_FALSE)


# --- customizations ---------------------------------------------------------------------------


class KernelSchema(Base):
    name = Str()
    append = Str()


class SSHKeySchema(Base):
    user = Str(required=True)
    key = Str(required=True)


class UserSchema(Base):
    name = Str(required=True)
    description = Str(metadata=POINTER)
    password = Str(metadata=POINTER)
    key = Str(metadata=POINTER)
    home = Str(metadata=POINTER)
    shell = Str(metadata=POINTER)
    groups = StrList()
    uid = StrictInt(metadata=POINTER)
    gid = StrictInt(metadata=POINTER)
    expiredate = StrictInt(metadata=POINTER)
    force_password_reset = StrictBool(metadata=POINTER)


class GroupCustomizationSchema(Base):
    name = Str(required=True)
    gid = StrictInt(metadata=POINTER)


class TimezoneSchema(Base):
    timezone = Str(metadata=POINTER)
    ntpservers = StrList()


class LocaleSchema(Base):
    languages = StrList()
    keyboard = Str(metadata=POINTER)


class FirewallServicesSchema(Base):
    enabled = StrList()
    disabled = StrList()


class FirewallZoneSchema(Base):
    name = Str(metadata=POINTER)
    sources = StrList()


class FirewallSchema(Base):
    ports = StrList()
    services = fields.Nested(FirewallServicesSchema, metadata=POINTER)
    zones = NestedList(FirewallZoneSchema)


class ServicesSchema(Base):
    enabled = StrList()
    disabled = StrList()
    masked = StrList()


class FilesystemSchema(Base):
    """`size` is an alias of `minsize`; both may be a byte count or a string like "2 GiB"."""

    mountpoint = Str(required=True)
    minsize = Size()
    size = Size(load_only=True)

    @validates_schema
    def _sizes(self, data: dict[str, Any], **kwargs: Any) -> None:
        _check_path(data.get("mountpoint", "/"), "mountpoint")
        if data.get("size") and data.get("minsize"):
            raise ValidationError("size and minsize cannot both be set (size is an alias for minsize)")
        if not data.get("size") and not data.get("minsize"):
            raise ValidationError("minsize must be greater than 0")

    @post_load(pass_original=False)
    def _alias(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        size = data.pop("size", None)
        if size:
            data = {"mountpoint": data["mountpoint"], "minsize": size}
        return data


class FsTypedFields(Base):
    mountpoint = Str()
    label = Str()
    fs_type = Str()


class LogicalVolumeSchema(Base):
    class Meta:
        unknown = RAISE

    name = Str()
    minsize = Size(required=True)
    mountpoint = Str()
    label = Str()
    fs_type = Str()


class BtrfsSubvolumeSchema(Base):
    class Meta:
        unknown = RAISE

    name = Str()
    mountpoint = Str()


_PART_COMMON = ("type", "minsize", "part_type", "part_label", "part_uuid")
_PART_KINDS = {
    "plain": _PART_COMMON + ("mountpoint", "label", "fs_type"),
    "lvm": _PART_COMMON + ("name", "logical_volumes"),
    "btrfs": _PART_COMMON + ("subvolumes",),
}


class PartitionSchema(Base):
    """One partition: plain (a filesystem), lvm (a volume group) or btrfs (subvolumes)."""

    class Meta:
        unknown = RAISE

    type = Str()
    minsize = Size(required=True)
    part_type = Str()
    part_label = Str()
    part_uuid = Str()
    mountpoint = Str()
    label = Str()
    fs_type = Str()
    name = Str()
    logical_volumes = NestedList(LogicalVolumeSchema)
    subvolumes = NestedList(BtrfsSubvolumeSchema)

    @validates_schema(pass_original=True)
    def _kind(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        kind = data.get("type") or "plain"
        if kind not in _PART_KINDS:
            raise ValidationError(f"unknown partition type: {kind}")
        extra = sorted(set(original) - set(_PART_KINDS[kind])) if isinstance(original, dict) else []
        if extra:
            raise ValidationError(f"unknown field(s) for a partition of type {kind!r}: {', '.join(extra)}")
        if kind == "plain" and data.get("mountpoint"):
            _check_path(data["mountpoint"], "mountpoint")

    @post_load
    def _default_type(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {"type": data.get("type") or "plain", **{k: v for k, v in data.items() if k != "type"}}


class DiskSchema(Base):
    type = Str()
    minsize = Size(metadata=OMIT_FALSE)
    partitions = NestedList(PartitionSchema)
    start_offset = Size(metadata=OMIT_FALSE)
    sector_size = StrictInt(metadata=OMIT_FALSE)

    @validates_schema
    def _layout(self, data: dict[str, Any], **kwargs: Any) -> None:
        kind = data.get("type", "")
        if kind not in ("", "gpt", "dos"):
            raise ValidationError(f"unknown partition table type: {kind} (valid: gpt, dos)")
        parts = data.get("partitions") or []
        if kind == "dos" and len(parts) > 4:
            raise ValidationError('"dos" partition table type only supports up to 4 partitions: '
                                  f"got {len(parts)}")
        sector = data.get("sector_size") or 0
        if sector and sector & (sector - 1):
            raise ValidationError(f"sector_size must be a power of 2, got {sector}")
        kinds = [p.get("type") or "plain" for p in parts]
        if "lvm" in kinds and "btrfs" in kinds:
            raise ValidationError("btrfs and lvm partitioning cannot be combined")
        if kinds.count("btrfs") > 1:
            raise ValidationError("multiple btrfs volumes are not yet supported")
        if kinds.count("lvm") > 1:
            raise ValidationError("multiple LVM volume groups are not yet supported")


class FDOSchema(Base):
    manufacturing_server_url = Str()
    diun_pub_key_insecure = Str()
    diun_pub_key_hash = Str()
    diun_pub_key_root_certs = Str()
    di_mfg_string_type_mac_iface = Str()


class OpenSCAPTailoringSchema(Base):
    selected = StrList()
    unselected = StrList()


class OpenSCAPJSONTailoringSchema(Base):
    profile_id = Str()
    filepath = Str()


class OpenSCAPSchema(Base):
    datastream = Str()
    profile_id = Str()
    tailoring = fields.Nested(OpenSCAPTailoringSchema, metadata=POINTER)
    json_tailoring = fields.Nested(OpenSCAPJSONTailoringSchema, metadata=POINTER)
    policy_id = Str()


class IgnitionEmbeddedSchema(Base):
    config = Str()


class IgnitionFirstbootSchema(Base):
    url = Str()
    empty = StrictBool(metadata=OMIT_FALSE)


class IgnitionSchema(Base):
    embedded = fields.Nested(IgnitionEmbeddedSchema, metadata=POINTER)
    firstboot = fields.Nested(IgnitionFirstbootSchema, metadata=POINTER)


class _FsNodeSchema(Base):
    path = Str(required=True)
    user = IdOrName()
    group = IdOrName()
    mode = Str()

    @validates_schema
    def _node(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "path" in data:
            _check_path(data["path"], "path")  # also refuses a trailing slash
        mode = data.get("mode")
        if mode and not _MODE.match(mode):
            raise ValidationError(f"invalid mode {mode}: must be an octal number", "mode")


class DirectorySchema(_FsNodeSchema):
    ensure_parents = StrictBool(metadata=OMIT_FALSE)


class FileSchema(_FsNodeSchema):
    data = Str()
    uri = Str()

    @validates_schema
    def _source(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("data") and data.get("uri"):
            raise ValidationError(f"cannot specify both data {data['data']!r} and URI {data['uri']!r}")


_REPO_FILENAME = re.compile(r"^[\w.-]{1,250}\.repo$")


class RepositorySchema(Base):
    id = Str(required=True)
    baseurls = StrList()
    gpgkeys = StrList()
    metalink = Str()
    mirrorlist = Str()
    name = Str()
    priority = StrictInt(metadata=POINTER)
    enabled = StrictBool(metadata=POINTER)
    gpgcheck = StrictBool(metadata=POINTER)
    repo_gpgcheck = StrictBool(metadata=POINTER)
    sslverify = StrictBool(metadata=POINTER)
    module_hotfixes = StrictBool(metadata=POINTER)
    filename = Str()
    install_from = StrictBool(load_default=False, metadata=KEEP)

    @validates_schema
    def _repo(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data.get("id"):
            raise ValidationError("Repository ID is required")
        filename = data.get("filename") or data["id"]
        if not filename.endswith(".repo"):
            filename += ".repo"
        if not _REPO_FILENAME.match(filename):
            raise ValidationError(f"Repository filename {filename!r} is invalid")
        if not (data.get("baseurls") or data.get("metalink") or data.get("mirrorlist")):
            raise ValidationError("Repository base URL, mirrorlist or metalink is required")
        if data.get("gpgcheck") and not data.get("gpgkeys"):
            raise ValidationError("Repository gpg check is set to true but no gpg keys are provided")


class KickstartSchema(Base):
    contents = Str(required=True, metadata=KEEP)


class AnacondaModulesSchema(Base):
    enable = StrList()
    disable = StrList()


class Grub2Schema(Base):
    menu_timeout = StrictInt(data_key="menu-timeout", metadata=POINTER)


class InstallerBootloaderSchema(Base):
    grub2 = fields.Nested(Grub2Schema, metadata=POINTER)


class FlatpakRegistrySchema(Base):
    remote_name = Str()
    url = Str()


class FlatpakSchema(Base):
    registry = fields.Nested(FlatpakRegistrySchema, metadata=POINTER)
    references = StrList()


class FlatpakMetaSchema(Base):
    force = NestedList(FlatpakSchema)


class InstallerPayloadSchema(Base):
    flatpaks = fields.Nested(FlatpakMetaSchema, metadata=POINTER)


class InstallerSchema(Base):
    unattended = StrictBool(metadata=OMIT_FALSE)
    sudo_nopasswd = StrList(data_key="sudo-nopasswd")
    kickstart = fields.Nested(KickstartSchema, metadata=POINTER)
    modules = fields.Nested(AnacondaModulesSchema, metadata=POINTER)
    bootloader = fields.Nested(InstallerBootloaderSchema, metadata=POINTER)
    payload = fields.Nested(InstallerPayloadSchema, metadata=POINTER)


class RPMImportKeysSchema(Base):
    files = StrList()


class RPMSchema(Base):
    import_keys = fields.Nested(RPMImportKeysSchema, metadata=POINTER)


class _Enabled(Base):
    enabled = StrictBool(metadata=POINTER)


class DNFPluginsSchema(Base):
    product_id = fields.Nested(_Enabled, metadata=POINTER)
    subscription_manager = fields.Nested(_Enabled, metadata=POINTER)


class SubManRHSMSchema(Base):
    manage_repos = StrictBool(metadata=POINTER)
    auto_enable_yum_plugins = StrictBool(metadata=POINTER)


class SubManCertdSchema(Base):
    auto_registration = StrictBool(metadata=POINTER)


class SubManSchema(Base):
    rhsm = fields.Nested(SubManRHSMSchema, metadata=POINTER)
    rhsmcertd = fields.Nested(SubManCertdSchema, metadata=POINTER)


class RHSMConfigSchema(Base):
    dnf_plugins = fields.Nested(DNFPluginsSchema, metadata=POINTER)
    subscription_manager = fields.Nested(SubManSchema, metadata=POINTER)


class RHSMSchema(Base):
    config = fields.Nested(RHSMConfigSchema, metadata=POINTER)


class CACertsSchema(Base):
    pem_certs = StrList()


class ContainersStorageSchema(Base):
    destination_path = Str(data_key="destination-path", metadata=POINTER)


_SCRIPT_COMMON = ("type", "name", "ignore_failure", "after", "before")
_SCRIPT_KINDS = {
    "custom": (_SCRIPT_COMMON + ("contents",), ("contents",),
               "missing contents field for custom firstboot customization"),
    "satellite": (_SCRIPT_COMMON + ("cacerts", "command"), ("command",),
                  "missing command field for satellite firstboot customization"),
    "aap": (_SCRIPT_COMMON + ("cacerts", "job_template_url", "host_config_key"),
            ("job_template_url", "host_config_key"),
            "missing job_template_url or host_config_key field for aap firstboot customization"),
}


class FirstbootScriptSchema(Base):
    """A first-boot script: a union chosen by `type` (custom, satellite, aap)."""

    class Meta:
        unknown = RAISE

    type = Str(required=True)
    name = Str()
    ignore_failure = StrictBool(metadata=OMIT_FALSE)
    after = StrList()
    before = StrList()
    contents = Str()
    cacerts = StrList()
    command = Str()
    job_template_url = Str()
    host_config_key = Str()

    @validates_schema(pass_original=True)
    def _kind(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        kind = (data.get("type") or "").lower()
        if kind not in _SCRIPT_KINDS:
            raise ValidationError("unknown firstboot customization: missing or invalid type field")
        allowed, required, missing_msg = _SCRIPT_KINDS[kind]
        extra = sorted(set(original) - set(allowed)) if isinstance(original, dict) else []
        if extra:
            raise ValidationError(f"unknown field(s) for a {kind} firstboot script: {', '.join(extra)}")
        if not all(data.get(k) for k in required):
            raise ValidationError(missing_msg)


class FirstbootSchema(Base):
    scripts = NestedList(FirstbootScriptSchema)


class DNFConfigSchema(Base):
    set_releasever = StrictBool(metadata=OMIT_FALSE)


class DNFSchema(Base):
    config = fields.Nested(DNFConfigSchema, metadata=POINTER)


_VOLUME_ID = re.compile(r"^[\w-]+$")


class ISOSchema(Base):
    application_id = Str()
    publisher = Str()
    volume_id = Str()

    @validates_schema
    def _volume(self, data: dict[str, Any], **kwargs: Any) -> None:
        vid = data.get("volume_id")
        if vid and not _VOLUME_ID.match(vid):
            raise ValidationError(f"invalid volume id {vid!r}, may contain letters, numbers, -, and _ only")


class SshdSchema(Base):
    password_authentication = StrictBool(metadata=POINTER)
    client_alive_interval = StrictInt(metadata=POINTER)
    permit_root_login = Str()
    kbd_interactive_authentication = StrictBool(metadata=POINTER)


PARTITIONING_MODES = ("", "raw", "lvm", "auto-lvm")


class CustomizationsSchema(Base):
    hostname = Str(metadata=POINTER)
    kernel = fields.Nested(KernelSchema, metadata=POINTER)
    sshkey = NestedList(SSHKeySchema)
    user = NestedList(UserSchema)
    group = NestedList(GroupCustomizationSchema)
    timezone = fields.Nested(TimezoneSchema, metadata=POINTER)
    locale = fields.Nested(LocaleSchema, metadata=POINTER)
    firewall = fields.Nested(FirewallSchema, metadata=POINTER)
    services = fields.Nested(ServicesSchema, metadata=POINTER)
    filesystem = NestedList(FilesystemSchema)
    disk = fields.Nested(DiskSchema, metadata=POINTER)
    installation_device = Str()
    partitioning_mode = Str()
    fdo = fields.Nested(FDOSchema, metadata=POINTER)
    openscap = fields.Nested(OpenSCAPSchema, metadata=POINTER)
    ignition = fields.Nested(IgnitionSchema, metadata=POINTER)
    directories = NestedList(DirectorySchema)
    files = NestedList(FileSchema)
    repositories = NestedList(RepositorySchema)
    fips = StrictBool(metadata=POINTER)
    installer = fields.Nested(InstallerSchema, metadata=POINTER)
    rpm = fields.Nested(RPMSchema, metadata=POINTER)
    rhsm = fields.Nested(RHSMSchema, metadata=POINTER)
    cacerts = fields.Nested(CACertsSchema, metadata=POINTER)
    containers_storage = fields.Nested(ContainersStorageSchema, data_key="containers-storage", metadata=POINTER)
    firstboot = fields.Nested(FirstbootSchema, metadata=POINTER)
    dnf = fields.Nested(DNFSchema, metadata=POINTER)
    iso = fields.Nested(ISOSchema, metadata=POINTER)
    sshd = fields.Nested(SshdSchema, metadata=POINTER)

    @validates_schema
    def _whole(self, data: dict[str, Any], **kwargs: Any) -> None:
        mode = data.get("partitioning_mode", "")
        if mode not in PARTITIONING_MODES:
            raise ValidationError(f"invalid partitioning mode '{mode}'", "partitioning_mode")
        names: set[str] = set()
        gids: set[int] = set()
        for group in data.get("group") or []:
            if group.get("name") in names:
                raise ValidationError(f"duplicate group name: {group['name']}", "group")
            names.add(group.get("name"))
            if "gid" in group:
                if group["gid"] in gids:
                    raise ValidationError(f"duplicate group ID: {group['gid']}", "group")
                gids.add(group["gid"])
        mountpoints = [fs.get("mountpoint") for fs in data.get("filesystem") or []]
        dupes = sorted({m for m in mountpoints if mountpoints.count(m) > 1})
        if dupes:
            raise ValidationError(f"duplicate mountpoint(s): {', '.join(dupes)}", "filesystem")


class BlueprintSchema(Base):
    """The whole blueprint; list fields are always present, as osbuild-composer initialises them."""

    name = Str(metadata=KEEP, load_default="")
    description = Str()
    version = Str()
    packages = NestedList(PackageSchema, load_default=list, metadata=KEEP)
    modules = NestedList(PackageSchema, load_default=list, metadata=KEEP)
    enabled_modules = NestedList(EnabledModuleSchema, load_default=list, metadata=KEEP)
    groups = NestedList(GroupSchema, load_default=list, metadata=KEEP)
    containers = NestedList(ContainerSchema)
    customizations = fields.Nested(CustomizationsSchema, allow_none=True, metadata=POINTER)
    distro = Str(metadata=KEEP, load_default="")
    architecture = Str()


BLUEPRINT_SCHEMA = BlueprintSchema()


def flatten_errors(messages: Any, prefix: str = "") -> list[str]:
    """marshmallow's nested error dict as "customizations.user.0.uid: Not a valid integer." lines."""
    out: list[str] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            where = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            out.extend(flatten_errors(value, where))
    elif isinstance(messages, list):
        for item in messages:
            out.extend(flatten_errors(item, prefix))
    else:
        out.append(f"{prefix}: {messages}" if prefix else str(messages))
    return out


def load_blueprint_dict(data: Any) -> dict[str, Any]:
    """The blueprint as stored: validated, known keys only, osbuild-composer's order.

    Raises ValidationError whose messages `flatten_errors` turns into readable lines.
    """
    if not isinstance(data, dict):
        raise ValidationError("a blueprint must be a table/object")
    return BLUEPRINT_SCHEMA.load(data)
