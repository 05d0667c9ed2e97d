"""End-to-end tests: ftpgate in front of a WebDAV server (``rclone serve webdav``
on loopback, serving a temporary directory), driven by lftp and curl.

lftp mirrors a tree with awkward names and empty directories up and back
(MKCOL, streamed PUTs moved into place, PROPFIND listings), and curl resumes a
download from an offset (ranged GETs) and renames over FTP (MOVE).
"""

from __future__ import annotations

import pathlib
import secrets
import socket
import subprocess
import time
import urllib.parse
from typing import Iterator

import pytest

from conftest import (
    FtpServer,
    _free_control_port,
    _free_passive_range,
    _ftpgate_bin,
    _spawn,
    _stop,
    _wait_until_ready,
)
from e2e_support import (
    AWKWARD_NAMES,
    assert_same_tree,
    make_tree,
    random_bytes,
    require_tool,
    run,
    sha256_bytes,
    tree_digest,
    tree_dirs,
)
from test_lftp import lftp, q

USER = "davuser"
PASSWORD = "Dav-pa55_e2e"


def _wait_for_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}")


@pytest.fixture
def dav_ftp_server(tmp_path: pathlib.Path) -> Iterator[FtpServer]:
    """ftpgate serving a fresh WebDAV server's directory (the server's ``root``)."""
    require_tool("rclone")
    dav_root = tmp_path / "davroot"
    dav_root.mkdir()
    dav_port = _free_control_port()
    dav_pass = secrets.token_hex(8)
    dav = _spawn(
        ["rclone", "serve", "webdav", "--addr", f"127.0.0.1:{dav_port}",
         "--user", "dav", "--pass", dav_pass, "--log-level", "ERROR", str(dav_root)],
        tmp_path, tmp_path / "rclone.log",
    )
    try:
        _wait_for_port(dav_port, dav, "rclone serve webdav")
        hashed = run([str(_ftpgate_bin()), "hash-password", "--password", PASSWORD])
        port = _free_control_port()
        prange = _free_passive_range(exclude=port)
        config = tmp_path / "ftpgate.toml"
        config.write_text(
            f"""[server]
listen = ["127.0.0.1:{port}"]
passive_ports = "{prange[0]}-{prange[1]}"

[storage]
type = "webdav"

[storage.webdav]
endpoint = "http://127.0.0.1:{dav_port}"
username = "dav"
password = "{dav_pass}"

[[users]]
name = "{USER}"
password_hash = "{hashed.stdout.decode().strip()}"
home = "/"
""",
            encoding="utf-8",
        )
        log_path = tmp_path / "server.log"
        proc = _spawn([str(_ftpgate_bin()), "serve", "--config", str(config)], tmp_path, log_path)
        server = FtpServer(kind="ftpgate", host="127.0.0.1", port=port, user=USER,
                           password=PASSWORD, root=dav_root, passive_ports=prange,
                           log_path=log_path, proc=proc)
        try:
            _wait_until_ready(proc, port, log_path)
            yield server
        finally:
            _stop(proc)
            print(f"--- ftpgate output ---\n{server.log()[-20000:]}")
    finally:
        _stop(dav)


def test_lftp_mirrors_a_tree_through_webdav(dav_ftp_server, tmp_path):
    local = tmp_path / "local"
    back = tmp_path / "back"
    expected = make_tree(local, files=60, max_size=300 * 1024, seed=41,
                         extra_names=AWKWARD_NAMES, empty_dirs=["empty-dir", "alpha/empty ü"])
    lftp(dav_ftp_server, tmp_path, [
        f"mirror -R --parallel=4 {q(local)} remote",
        f"mirror --parallel=4 remote {q(back)}",
    ], passive=True)
    remote = dav_ftp_server.root / "remote"
    assert_same_tree(expected, tree_digest(remote), "the WebDAV server's directory")
    assert_same_tree(expected, tree_digest(back), "tree mirrored back")
    assert tree_dirs(remote) == tree_dirs(local)
    assert tree_dirs(back) == tree_dirs(local)
    leftovers = [p for p in dav_ftp_server.root.rglob(".ftpgate-upload-*")]
    assert leftovers == [], f"temporary upload files left: {leftovers}"


def test_curl_resumes_a_download_and_renames(dav_ftp_server, tmp_path):
    require_tool("curl")
    data = random_bytes(5 * 1024 * 1024 + 123, seed=42)
    (dav_ftp_server.root / "big.bin").write_bytes(data)
    base = f"ftp://127.0.0.1:{dav_ftp_server.port}/"
    auth = ["--user", f"{USER}:{PASSWORD}", "--silent", "--show-error", "--noproxy", "*"]
    out = tmp_path / "tail.bin"
    # REST 3000000 then RETR: the tail only.
    run(["curl", *auth, "-C", "3000000", "-o", str(out), base + "big.bin"])
    assert sha256_bytes(out.read_bytes()) == sha256_bytes(data[3_000_000:])
    # RNFR/RNTO become a MOVE on the server.
    run(["curl", *auth, "-Q", "RNFR big.bin", "-Q", "RNTO moved.bin", base])
    assert not (dav_ftp_server.root / "big.bin").exists()
    assert (dav_ftp_server.root / "moved.bin").read_bytes() == data
    listing = run(["curl", *auth, "--list-only", base]).stdout.decode()
    assert listing.split() == ["moved.bin"]
    name = urllib.parse.quote("ü name.txt")
    upload = tmp_path / "up.txt"
    upload.write_bytes(b"uploaded through curl")
    run(["curl", *auth, "-T", str(upload), base + name])
    assert (dav_ftp_server.root / "ü name.txt").read_bytes() == b"uploaded through curl"
