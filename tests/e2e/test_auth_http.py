"""End-to-end: logins checked by an HTTP service (`[[auth]] type = "http"`).

The service is the example shipped in contrib/auth-http-example.py (users "ann" with all
permissions and "viewer" with "elr"), run on a free loopback port; a `[[users]]` entry sits
after it in the chain. curl and lftp log in through it; ftplib checks the exact replies while
the service is stopped (421, never a ban, however many attempts) and started again.
"""

from __future__ import annotations

import ftplib
import pathlib
import socket
import subprocess
import sys
import time

import pytest

from conftest import (
    REPO_ROOT,
    hash_password,
    serving_config,
)
from e2e_support import check_curl_login_chain, check_lftp_read_only

SERVICE = REPO_ROOT / "contrib" / "auth-http-example.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    def __init__(self, port: int, root: pathlib.Path, log: pathlib.Path):
        self.port, self.root, self.log = port, root, log
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVICE), f"127.0.0.1:{self.port}", str(self.root)],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the example login service did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def gate(tmp_path):
    """ftpgate with [[auth]] http (the example service) then file (user "local")."""
    root = tmp_path / "homes"
    for name in ("ann", "viewer", "local"):
        (root / name).mkdir(parents=True)
    (root / "viewer" / "readme.txt").write_bytes(b"read me\n")
    service = Service(_free_port(), root, tmp_path / "service.log")
    service.start()
    try:
        with serving_config(tmp_path, f"""ban_after_failures = 3
login_failure_delay_ms = 100

[[auth]]
type = "http"
url = "http://127.0.0.1:{service.port}/login"
timeout_secs = 2

[[auth]]
type = "file"

[[users]]
name = "local"
password_hash = "{hash_password('local-pw')}"
home = "{root / 'local'}"
""") as (port, _):
            yield port, root, service
    finally:
        service.stop()


def test_curl_logs_in_through_the_service_and_transfers(gate, tmp_path):
    port, root, _ = gate
    check_curl_login_chain(port, root, tmp_path)


def test_lftp_gets_the_permissions_the_service_gives(gate, tmp_path):
    port, root, _ = gate
    check_lftp_read_only(port, root, tmp_path, "viewer", "look")


def test_a_stopped_service_gets_421_and_never_a_ban(gate):
    port, _, service = gate
    service.stop()
    # Twice the ban threshold (3): every attempt is told to come back later.
    for _ in range(6):
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", port, timeout=10)
        with pytest.raises(ftplib.error_temp, match="^421"):
            ftp.login("ann", "ann-secret")
        ftp.close()
    # So is a [[users]] user: the chain stops at the service (no fallthrough configured).
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=10)
    with pytest.raises(ftplib.error_temp, match="^421"):
        ftp.login("local", "local-pw")
    ftp.close()
    # The service is back: logins work from the same address at once.
    service.start()
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=10)
    assert ftp.login("ann", "ann-secret").startswith("230")
    ftp.quit()
