"""A loopback Docker registry for tests: serves one small image over the registry API v2.

The engine treats 127.0.0.1 as an insecure registry by default, so a real pull of
`127.0.0.1:PORT/NAME:TAG` reaches this server over plain HTTP: the pull path (progress,
the image arriving) is tested for real on a machine without registry access.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _layer(size: int) -> bytes:
    """An uncompressed layer: one file of random bytes (the engine detects compression)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        payload = os.urandom(size)
        info = tarfile.TarInfo("payload.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return out.getvalue()


def saved_image(client: Any, image: str) -> tuple[bytes, list[bytes]]:
    """An image of the engine as `(config, layers)` (`docker save`), for `saved=`."""
    archive = io.BytesIO(b"".join(client.images.get(image).save()))
    with tarfile.open(fileobj=archive) as tar:
        def read(member: str) -> bytes:
            handle = tar.extractfile(member)
            assert handle is not None, member
            return handle.read()

        entry = json.loads(read("manifest.json"))[0]
        return read(entry["Config"]), [read(layer) for layer in entry["Layers"]]


class LoopbackRegistry:
    """Serves `NAME:TAG` until `close()`: one layer of `layer_bytes` random bytes, or a
    `saved_image`. `pace` slows blobs down (seconds per 256 KiB) so that the engine
    reports progress on the way."""

    def __init__(self, name: str = "traindeck-test/tiny", tag: str = "1",
                 layer_bytes: int = 8 << 20, pace: float = 0.0,
                 saved: tuple[bytes, list[bytes]] | None = None) -> None:
        if saved is None:
            layer = _layer(layer_bytes)
            config = json.dumps({
                "architecture": "amd64", "os": "linux", "config": {},
                "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
            }).encode()
            saved = (config, [layer])
        config, layers = saved
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": len(layer), "digest": _digest(layer)} for layer in layers],
        }).encode()
        self.blobs = {_digest(blob): blob for blob in (config, *layers)}
        routes = {f"/v2/{name}/manifests/{tag}": (manifest, MANIFEST_TYPE),
                  f"/v2/{name}/manifests/{_digest(manifest)}": (manifest, MANIFEST_TYPE),
                  **{f"/v2/{name}/blobs/{d}": (b, "application/octet-stream")
                     for d, b in self.blobs.items()},
                  "/v2/": (b"{}", "application/json")}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(routes, manifest, pace))
        self.image = f"127.0.0.1:{self.server.server_address[1]}/{name}:{tag}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def _handler(routes: dict[str, tuple[bytes, str]], manifest: bytes, pace: float) -> Any:
    """The request handler; blobs are sent in 256 KiB pieces, `pace` seconds apart."""
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: bool) -> None:
            found = routes.get(self.path.split("?")[0])
            if found is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            blob, kind = found
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(blob)))
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            if blob is manifest:
                self.send_header("Docker-Content-Digest", _digest(manifest))
            self.end_headers()
            if body:
                for start in range(0, len(blob), 256 << 10):  # in pieces: progress events
                    self.wfile.write(blob[start:start + (256 << 10)])
                    if pace and len(blob) > (256 << 10):
                        time.sleep(pace)

        def do_GET(self) -> None:
            self._answer(True)

        def do_HEAD(self) -> None:
            self._answer(False)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
