"""Local HTTP doubles of cloud control-plane APIs that no server installable here implements.

Used only where no real server can run on this machine (the storage halves run on real
emulators: moto, Azurite, gcp-storage-emulator). Each double implements the documented REST
endpoints the uploader calls, with their request and response shapes, checks what a real service
would refuse (missing or wrong bearer tokens, bad bodies, unknown resources), and records every
call, so tests assert what the real SDK code path sent. Each test module using one says so.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import tarfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.uploaders.emulators import TLSCert

Route = tuple[str, re.Pattern[str], Callable[..., tuple[int, Any]]]


class HTTPDouble:
    """A threaded HTTP server on a free loopback port dispatching to `routes`; HTTPS with `tls`
    (SDKs that refuse to send a bearer token over plain HTTP)."""

    def __init__(self, tls: TLSCert | None = None) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.routes: list[Route] = []
        self.lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body, headers = double.dispatch(method, self.path, self.headers, raw)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.server_context().wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def route(self, method: str, pattern: str) -> Callable[[Callable[..., tuple[int, Any]]], Any]:
        def add(func: Callable[..., tuple[int, Any]]) -> Callable[..., tuple[int, Any]]:
            self.routes.append((method, re.compile(pattern + r"$"), func))
            return func
        return add

    def dispatch(self, method: str, path: str, headers: Any, raw: bytes) -> tuple[int, Any, dict]:
        parsed = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        for verb, pattern, func in self.routes:
            match = pattern.match(parsed.path)
            if verb == method and match:
                with self.lock:
                    self.calls.append((method, parsed.path, raw))
                result = func(headers=headers, raw=raw, query=query, **match.groupdict())
                if len(result) == 2:
                    return result[0], result[1], {}
                return result
        return 404, {"error": {"code": 404, "message": f"no route {method} {parsed.path}"}}, {}

    def called(self, method: str, pattern: str) -> list[bytes]:
        rx = re.compile(pattern + r"$")
        with self.lock:
            return [raw for verb, path, raw in self.calls if verb == method and rx.match(path)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class GCPComputeDouble(HTTPDouble):
    """OAuth2 token endpoint + the Compute Engine v1 image endpoints the GCP target calls.

    The token endpoint checks the service account's signed JWT against the public key the test
    registered (a key it doesn't know is refused, as Google's is); Compute calls need a token it
    issued. `images.insert` reads the raw disk from the GCS emulator the test points `storage_url`
    at, as Compute reads it from storage.googleapis.com, and fails the operation when the object is
    missing or is not a gzip'd tar holding disk.raw.
    """

    def __init__(self, storage_url: str) -> None:
        super().__init__()
        self.storage_url = storage_url.rstrip("/")
        self.public_keys: dict[str, bytes] = {}  # client_email -> PEM public key
        self.tokens: set[str] = set()
        self.images: dict[str, dict[str, Any]] = {}
        self.policies: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.fail_insert: tuple[int, str] | None = None
        self._setup()

    def _authorized(self, headers: Any) -> bool:
        value = headers.get("Authorization", "")
        return value.startswith("Bearer ") and value[7:] in self.tokens

    def _setup(self) -> None:
        unauthorized = (401, {"error": {"code": 401, "message": "Request had invalid authentication credentials."}})

        @self.route("POST", "/token")
        def token(raw: bytes, **_: Any) -> tuple[int, Any]:
            from google.auth import jwt

            form = dict(urllib.parse.parse_qsl(raw.decode()))
            assertion = form.get("assertion", "")
            try:
                claims = jwt.decode(assertion, verify=False)
                key = self.public_keys[claims["iss"]]
                # google-auth signs for Google's token URL whatever token_uri says, as Google expects
                jwt.decode(assertion, certs=key, audience="https://oauth2.googleapis.com/token")
            except Exception as exc:
                return 400, {"error": "invalid_grant", "error_description": f"Invalid JWT Signature ({exc})"}
            issued = f"ya29.double-{len(self.tokens) + 1}"
            self.tokens.add(issued)
            return 200, {"access_token": issued, "expires_in": 3600, "token_type": "Bearer"}

        base = r"/compute/v1/projects/(?P<project>[^/]+)/global"

        @self.route("POST", base + "/images")
        def insert(headers: Any, raw: bytes, project: str, **_: Any) -> tuple[int, Any]:
            if not self._authorized(headers):
                return unauthorized
            if self.fail_insert:
                code, message = self.fail_insert
                return code, {"error": {"code": code, "message": message}}
            body = json.loads(raw)
            name = body.get("name", "")
            if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name):
                return 400, {"error": {"code": 400, "message": f"Invalid value for field 'resource.name': '{name}'"}}
            if name in self.images:
                return 409, {"error": {"code": 409, "message": f"The resource 'projects/{project}/global/images/{name}' already exists"}}
            op = {"name": f"operation-{len(self.operations) + 1}", "status": "RUNNING", "waits": 0,
                  "targetLink": f"{self.url}{base.replace('(?P<project>[^/]+)', project)}/images/{name}"}
            error = self._read_disk(body)
            if error:
                op["error"] = {"errors": [{"code": "RESOURCE_NOT_FOUND", "message": error}]}
            else:
                self.images[name] = {
                    "name": name, "status": "READY", "project": project,
                    "selfLink": f"https://www.googleapis.com/compute/v1/projects/{project}/global/images/{name}",
                    "rawDisk": body["rawDisk"], "guestOsFeatures": body.get("guestOsFeatures", []),
                    "storageLocations": body.get("storageLocations", [])}
                self.policies[name] = {"etag": "BwYAAA==", "bindings": []}
            self.operations[op["name"]] = op
            return 200, {k: v for k, v in op.items() if k != "waits"}

        @self.route("POST", base + "/operations/(?P<name>[^/]+)/wait")
        def wait(headers: Any, name: str, **_: Any) -> tuple[int, Any]:
            if not self._authorized(headers):
                return unauthorized
            op = self.operations.get(name)
            if op is None:
                return 404, {"error": {"code": 404, "message": f"operation {name} not found"}}
            op["waits"] += 1
            if op["waits"] >= 2:  # RUNNING on the first wait, so the caller's loop is exercised
                op["status"] = "DONE"
            return 200, {k: v for k, v in op.items() if k != "waits"}

        @self.route("GET", base + "/images/(?P<name>[^/]+)")
        def get(headers: Any, name: str, **_: Any) -> tuple[int, Any]:
            if not self._authorized(headers):
                return unauthorized
            if name not in self.images:
                return 404, {"error": {"code": 404, "message": f"image {name} not found"}}
            return 200, self.images[name]

        @self.route("DELETE", base + "/images/(?P<name>[^/]+)")
        def delete(headers: Any, name: str, **_: Any) -> tuple[int, Any]:
            if not self._authorized(headers):
                return unauthorized
            if self.images.pop(name, None) is None:
                return 404, {"error": {"code": 404, "message": f"image {name} not found"}}
            return 200, {"name": "operation-delete", "status": "DONE"}

        @self.route("GET", base + "/images/(?P<name>[^/]+)/getIamPolicy")
        def get_policy(headers: Any, name: str, **_: Any) -> tuple[int, Any]:
            if not self._authorized(headers):
                return unauthorized
            return 200, self.policies[name]

        @self.route("POST", base + "/images/(?P<name>[^/]+)/setIamPolicy")
        def set_policy(headers: Any, raw: bytes, name: str, **_: Any) -> tuple[int, Any]:
            if not self._authorized(headers):
                return unauthorized
            policy = json.loads(raw)["policy"]
            if policy.get("etag") != self.policies[name]["etag"]:
                return 412, {"error": {"code": 412, "message": "etag mismatch"}}
            self.policies[name] = {"etag": "BwYAAB==", "bindings": policy["bindings"]}
            return 200, self.policies[name]

    def _read_disk(self, body: dict[str, Any]) -> str:
        """What Compute would say about the raw disk, read from the emulator; '' when usable."""
        raw_disk = body.get("rawDisk") or {}
        prefix = "https://storage.googleapis.com/"
        source = raw_disk.get("source", "")
        if raw_disk.get("containerType") != "TAR" or not source.startswith(prefix):
            return f"bad rawDisk {raw_disk}"
        bucket, _, obj = source[len(prefix):].partition("/")
        url = (f"{self.storage_url}/download/storage/v1/b/{bucket}/o/"
               f"{urllib.parse.quote(obj, safe='')}?alt=media")
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                data = resp.read()
            with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
                tar.getmember("disk.raw")
        except Exception as exc:
            return f"The resource '{source}' is not a usable image: {exc}"
        return ""


class AzureDouble(HTTPDouble):
    """Microsoft Entra's token endpoints (OpenID discovery, client-credentials grant) and Azure
    Resource Manager's `Microsoft.Compute/images` endpoints, over HTTPS (azure-core sends bearer
    tokens over TLS only).

    The token endpoint accepts only the registered client secret; ARM calls need a token it
    issued; image creation is a long-running operation (201 + Azure-AsyncOperation, InProgress on
    the first poll) in a resource group that must exist, as ARM answers.
    """

    def __init__(self, tls: TLSCert, tenant: str, client_id: str, client_secret: str,
                 groups: set[str]) -> None:
        super().__init__(tls)
        self.tenant, self.client_id, self.client_secret = tenant, client_id, client_secret
        self.groups = groups
        self.tokens: set[str] = set()
        self.images: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self._setup()

    def _authorized(self, headers: Any) -> bool:
        value = headers.get("Authorization", "")
        return value.startswith("Bearer ") and value[7:] in self.tokens

    def _setup(self) -> None:
        unauthorized = (401, {"error": {"code": "InvalidAuthenticationToken",
                                        "message": "The access token is invalid."}})

        @self.route("GET", r"/(?P<tenant>[^/]+)/v2.0/.well-known/openid-configuration")
        def discovery(tenant: str, **_: Any) -> tuple[int, Any]:
            base = f"{self.url}/{tenant}"
            return 200, {"token_endpoint": f"{base}/oauth2/v2.0/token",
                         "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                         "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                         "issuer": f"{base}/v2.0", "tenant_region_scope": "NA"}

        @self.route("POST", r"/(?P<tenant>[^/]+)/oauth2/v2.0/token")
        def token(raw: bytes, tenant: str, **_: Any) -> tuple[int, Any]:
            form = dict(urllib.parse.parse_qsl(raw.decode()))
            if (tenant != self.tenant or form.get("client_id") != self.client_id
                    or form.get("client_secret") != self.client_secret):
                return 401, {"error": "invalid_client",
                             "error_description": "AADSTS7000215: Invalid client secret provided."}
            issued = f"eyJ.double-{len(self.tokens) + 1}"
            self.tokens.add(issued)
            return 200, {"token_type": "Bearer", "expires_in": 3599, "access_token": issued}

        image_path = (r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<group>[^/]+)"
                      r"/providers/Microsoft.Compute/images/(?P<name>[^/]+)")

        @self.route("PUT", image_path)
        def put_image(headers: Any, raw: bytes, sub: str, group: str, name: str, **_: Any) -> Any:
            if not self._authorized(headers):
                return unauthorized
            if group not in self.groups:
                return 404, {"error": {"code": "ResourceGroupNotFound",
                                       "message": f"Resource group '{group}' could not be found."}}
            body = json.loads(raw)
            os_disk = body.get("properties", {}).get("storageProfile", {}).get("osDisk", {})
            if not os_disk.get("blobUri") or os_disk.get("osType") not in ("Linux", "Windows"):
                return 400, {"error": {"code": "InvalidParameter", "message": f"bad osDisk {os_disk}"}}
            resource_id = f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Compute/images/{name}"
            self.images[name] = {"id": resource_id, "name": name, "type": "Microsoft.Compute/images",
                                 "location": body["location"],
                                 "properties": {**body["properties"], "provisioningState": "Creating"}}
            op = f"op-{name}"
            self.polls[op] = 0
            location = body["location"]
            return 201, self.images[name], {
                "Azure-AsyncOperation": f"{self.url}/subscriptions/{sub}/providers/Microsoft.Compute/"
                                        f"locations/{location}/operations/{op}?api-version=2024-03-01",
                "Retry-After": "0"}

        @self.route("GET", r"/subscriptions/[^/]+/providers/Microsoft.Compute/locations/[^/]+/operations/(?P<op>[^/]+)")
        def operation(headers: Any, op: str, **_: Any) -> tuple[int, Any]:
            if not self._authorized(headers):
                return unauthorized
            self.polls[op] += 1
            done = self.polls[op] >= 2
            if done:
                self.images[op[3:]]["properties"]["provisioningState"] = "Succeeded"
            return 200, {"name": op, "status": "Succeeded" if done else "InProgress"}

        @self.route("GET", image_path)
        def get_image(headers: Any, name: str, **_: Any) -> tuple[int, Any]:
            if not self._authorized(headers):
                return unauthorized
            if name not in self.images:
                return 404, {"error": {"code": "NotFound", "message": f"image {name} not found"}}
            return 200, self.images[name]


class OCIDouble(HTTPDouble):
    """Object Storage (bucket, multipart upload, object delete) and Compute's image import, the
    endpoints the `oci` target calls, on one port (the SDK takes one service endpoint per client).

    Every request must carry a valid OCI HTTP signature (draft-cavage: RSA-SHA256 over the listed
    headers, `(request-target)` included) from the registered key, as OCI checks it. Objects are
    kept in memory; an import reads its object, and a QCOW2 must start with the QCOW magic.
    """

    def __init__(self, key_id: str, public_key: bytes, namespace: str, buckets: set[str]) -> None:
        super().__init__()
        self.key_id, self.public_key = key_id, public_key
        self.namespace, self.buckets = namespace, buckets
        self.objects: dict[tuple[str, str], bytes] = {}
        self.multipart: dict[str, dict[str, Any]] = {}
        self.images: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self._setup()

    def verify(self, method: str, path: str, headers: Any) -> bool:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        fields = dict(re.findall(r'(\w+)="([^"]*)"', headers.get("Authorization", "")))
        if fields.get("keyId") != self.key_id or fields.get("algorithm") != "rsa-sha256":
            return False
        lines = []
        for name in fields.get("headers", "").split():
            if name == "(request-target)":
                lines.append(f"(request-target): {method.lower()} {path}")
            elif headers.get(name) is None:
                return False
            else:
                lines.append(f"{name}: {headers.get(name)}")
        key = serialization.load_pem_public_key(self.public_key)
        try:
            key.verify(base64.b64decode(fields.get("signature", "")), "\n".join(lines).encode(),
                       padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg, union-attr]
        except Exception:
            return False
        return True

    def dispatch(self, method: str, path: str, headers: Any, raw: bytes) -> tuple[int, Any, dict]:
        if not self.verify(method, path, headers):
            return 401, {"code": "NotAuthenticated",
                         "message": "The required information to complete authentication was not provided or was incorrect."}, {}
        return super().dispatch(method, path, headers, raw)

    def _setup(self) -> None:
        def missing_bucket(bucket: str) -> tuple[int, Any]:
            return 404, {"code": "BucketNotFound",
                         "message": f"Either the bucket named '{bucket}' does not exist in the namespace '{self.namespace}' or you are not authorized to access it"}

        ns = r"/n/(?P<ns>[^/]+)/b/(?P<bucket>[^/]+)"

        @self.route("GET", ns + "/?")
        def get_bucket(ns: str, bucket: str, **_: Any) -> tuple[int, Any]:
            if ns != self.namespace or bucket not in self.buckets:
                return missing_bucket(bucket)
            return 200, {"name": bucket, "namespace": ns, "compartmentId": "ocid1.compartment.oc1..x"}

        @self.route("POST", ns + "/u")
        def create_multipart(raw: bytes, ns: str, bucket: str, **_: Any) -> tuple[int, Any]:
            if bucket not in self.buckets:
                return missing_bucket(bucket)
            upload_id = f"upload-{len(self.multipart) + 1}"
            obj = json.loads(raw)["object"]
            self.multipart[upload_id] = {"bucket": bucket, "object": obj, "parts": {}, "state": "open"}
            return 200, {"uploadId": upload_id, "namespace": ns, "bucket": bucket, "object": obj}

        @self.route("PUT", ns + "/u/(?P<obj>.+)")
        def upload_part(raw: bytes, query: dict, **_: Any) -> Any:
            upload = self.multipart[query["uploadId"]]
            etag = f"etag-{len(upload['parts']) + 1}-{len(raw)}"
            upload["parts"][int(query["uploadPartNum"])] = (etag, raw)
            return 200, b"", {"etag": etag, "opc-content-md5": ""}

        @self.route("POST", ns + "/u/(?P<obj>.+)")
        def commit(raw: bytes, query: dict, bucket: str, obj: str, **_: Any) -> Any:
            upload = self.multipart[query["uploadId"]]
            parts = json.loads(raw)["partsToCommit"]
            if any(upload["parts"][p["partNum"]][0] != p["etag"] for p in parts):
                return 400, {"code": "InvalidUploadPart", "message": "etag mismatch"}
            self.objects[(bucket, urllib.parse.unquote(obj))] = b"".join(
                upload["parts"][p["partNum"]][1] for p in sorted(parts, key=lambda p: p["partNum"]))
            upload["state"] = "committed"
            return 200, b"", {"etag": "committed"}

        @self.route("DELETE", ns + "/u/(?P<obj>.+)")
        def abort(query: dict, **_: Any) -> Any:
            self.multipart[query["uploadId"]]["state"] = "aborted"
            return 204, b""

        @self.route("DELETE", ns + "/o/(?P<obj>.+)")
        def delete_object(bucket: str, obj: str, **_: Any) -> Any:
            if self.objects.pop((bucket, urllib.parse.unquote(obj)), None) is None:
                return 404, {"code": "ObjectNotFound", "message": f"object {obj} not found"}
            return 204, b""

        @self.route("POST", r"/20160918/images")
        def create_image(raw: bytes, **_: Any) -> tuple[int, Any]:
            body = json.loads(raw)
            source = body["imageSourceDetails"]
            data = self.objects.get((source["bucketName"], source["objectName"]))
            if source.get("sourceType") != "objectStorageTuple" or data is None:
                return 404, {"code": "NotAuthorizedOrNotFound", "message": f"object {source} not found"}
            if source.get("sourceImageType") == "QCOW2" and not data.startswith(b"QFI\xfb"):
                return 400, {"code": "InvalidParameter", "message": "The object is not a QCOW2 image"}
            image_id = f"ocid1.image.oc1.iad.double{len(self.images) + 1}"
            self.images[image_id] = {"id": image_id, "displayName": body["displayName"],
                                     "compartmentId": body["compartmentId"],
                                     "launchMode": body.get("launchMode"), "lifecycleState": "IMPORTING",
                                     "source": source}
            self.polls[image_id] = 0
            return 200, self.images[image_id]

        @self.route("GET", r"/20160918/images/(?P<image>[^/]+)")
        def get_image(image: str, **_: Any) -> tuple[int, Any]:
            self.polls[image] += 1
            if self.polls[image] >= 2:
                self.images[image]["lifecycleState"] = "AVAILABLE"
            return 200, self.images[image]

        @self.route("DELETE", r"/20160918/images/(?P<image>[^/]+)")
        def delete_image(image: str, **_: Any) -> Any:
            self.images[image]["lifecycleState"] = "DELETED"
            return 204, b""


class VCenterDouble(HTTPDouble):
    """vCenter's JSON APIs the `vmware` target calls, over HTTPS: the Automation API's session and
    inventory lookups (`/api`) and the VI/JSON API's OVF import lease and MarkAsTemplate
    (`/sdk/vim25/<release>`), plus the lease's disk upload URL.

    Logins check the user's password; every other call needs the session id it issued. The import
    spec lists the files the OVF descriptor references (a descriptor that doesn't parse is an
    error); the lease is `initializing` on its first poll; a disk must be a stream-optimized VMDK;
    completing the lease makes the VM, aborting it removes it.
    """

    def __init__(self, tls: TLSCert, user: str, password: str, inventory: dict[str, str]) -> None:
        super().__init__(tls)
        self.user, self.password, self.inventory = user, password, inventory
        self.sessions: set[str] = set()
        self.leases: dict[str, dict[str, Any]] = {}
        self.vms: dict[str, dict[str, Any]] = {}
        self.disks: dict[str, bytes] = {}
        self._setup()

    def _session(self, headers: Any) -> bool:
        return headers.get("vmware-api-session-id") in self.sessions

    def _setup(self) -> None:
        unauthenticated = (401, {"error_type": "UNAUTHENTICATED", "messages": []})
        ids = {"datacenter": "datacenter-1", "cluster": "domain-c8", "datastore": "datastore-11",
               "folder": "group-v4"}
        vim = r"/sdk/vim25/[0-9.]+"

        @self.route("POST", r"/api/session")
        def login(headers: Any, **_: Any) -> tuple[int, Any]:
            expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            if headers.get("Authorization") != f"Basic {expected}":
                return unauthenticated
            token = f"session-{len(self.sessions) + 1}"
            self.sessions.add(token)
            return 201, token

        @self.route("DELETE", r"/api/session")
        def logout(headers: Any, **_: Any) -> Any:
            self.sessions.discard(headers.get("vmware-api-session-id"))
            return 204, b""

        @self.route("GET", r"/api/vcenter/(?P<kind>datacenter|cluster|datastore|folder)")
        def lookup(headers: Any, query: dict, kind: str, **_: Any) -> tuple[int, Any]:
            if not self._session(headers):
                return unauthenticated
            if kind != "datacenter" and query.get("datacenters") != ids["datacenter"]:
                return 200, []
            wanted = self.inventory.get(kind, "vm" if kind == "folder" else "")
            if query.get("names") != wanted:
                return 200, []
            return 200, [{kind: ids[kind], "name": wanted}]

        @self.route("GET", r"/api/vcenter/resource-pool")
        def pools(headers: Any, query: dict, **_: Any) -> tuple[int, Any]:
            if not self._session(headers):
                return unauthenticated
            return 200, [{"resource_pool": "resgroup-9", "name": "Resources"}] if query.get("clusters") == ids["cluster"] else []

        @self.route("POST", vim + r"/OvfManager/OvfManager/CreateImportSpec")
        def import_spec(headers: Any, raw: bytes, **_: Any) -> tuple[int, Any]:
            import xml.etree.ElementTree as ET

            if not self._session(headers):
                return unauthenticated
            body = json.loads(raw)
            if body["datastore"]["value"] != ids["datastore"] or body["resourcePool"]["value"] != "resgroup-9":
                return 500, {"_typeName": "ManagedObjectNotFound", "faultMessage": ["bad moref"]}
            try:
                root = ET.fromstring(body["ovfDescriptor"])
            except ET.ParseError as exc:
                return 200, {"error": [{"localizedMessage": f"Failed to parse the OVF descriptor: {exc}"}]}
            ovf = "{http://schemas.dmtf.org/ovf/envelope/1}"
            files = [f.get(f"{ovf}href") for f in root.iter(f"{ovf}File")]
            return 200, {"importSpec": {"_typeName": "VirtualMachineImportSpec",
                                        "configSpec": {"name": body["cisp"]["entityName"]}},
                         "fileItem": [{"deviceId": f"/vm/disk{i}", "path": href, "create": False}
                                      for i, href in enumerate(files)]}

        @self.route("POST", vim + r"/ResourcePool/(?P<pool>[^/]+)/ImportVApp")
        def import_vapp(headers: Any, raw: bytes, **_: Any) -> tuple[int, Any]:
            if not self._session(headers):
                return unauthenticated
            body = json.loads(raw)
            lease = f"lease-{len(self.leases) + 1}"
            files = [f"/vm/disk{i}" for i in range(4)]
            self.leases[lease] = {"state": "initializing", "name": body["spec"]["configSpec"]["name"],
                                  "folder": body["folder"]["value"], "vm": f"vm-{41 + len(self.leases)}",
                                  "urls": {key: f"/nfc/{lease}/disk-{i}.vmdk" for i, key in enumerate(files)}}
            return 200, {"_typeName": "ManagedObjectReference", "type": "HttpNfcLease", "value": lease}

        @self.route("GET", vim + r"/HttpNfcLease/(?P<lease>[^/]+)/state")
        def lease_state(headers: Any, lease: str, **_: Any) -> tuple[int, Any]:
            if not self._session(headers):
                return unauthenticated
            state = self.leases[lease]["state"]
            if state == "initializing":
                self.leases[lease]["state"] = "ready"
            return 200, state

        @self.route("GET", vim + r"/HttpNfcLease/(?P<lease>[^/]+)/info")
        def lease_info(headers: Any, lease: str, **_: Any) -> tuple[int, Any]:
            if not self._session(headers):
                return unauthenticated
            info = self.leases[lease]
            return 200, {"entity": {"type": "VirtualMachine", "value": info["vm"]},
                         "deviceUrl": [{"importKey": key, "url": f"https://*{path}", "key": key}
                                       for key, path in info["urls"].items()]}

        @self.route("POST", r"/nfc/(?P<lease>[^/]+)/(?P<disk>[^/]+)")
        def disk(headers: Any, raw: bytes, lease: str, disk: str, **_: Any) -> Any:
            if headers.get("Content-Type") != "application/x-vnd.vmware-streamVmdk" or not raw.startswith(b"KDMV"):
                return 400, {"faultMessage": ["not a stream-optimized VMDK"]}
            if self.leases[lease]["state"] != "ready":
                return 409, {"faultMessage": [f"lease is {self.leases[lease]['state']}"]}
            self.disks[f"{lease}/{disk}"] = raw
            return 200, b""

        @self.route("POST", vim + r"/HttpNfcLease/(?P<lease>[^/]+)/(?P<op>HttpNfcLease\w+)")
        def lease_op(headers: Any, lease: str, op: str, **_: Any) -> Any:
            if not self._session(headers):
                return unauthenticated
            info = self.leases[lease]
            if op == "HttpNfcLeaseComplete":
                info["state"] = "done"
                self.vms[info["vm"]] = {"name": info["name"], "folder": info["folder"], "template": False}
            elif op == "HttpNfcLeaseAbort":
                info["state"] = "error"
            return 204, b""

        @self.route("POST", vim + r"/VirtualMachine/(?P<vm>[^/]+)/MarkAsTemplate")
        def mark(headers: Any, vm: str, **_: Any) -> Any:
            if not self._session(headers):
                return unauthenticated
            self.vms[vm]["template"] = True
            return 204, b""
