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
    _free_control_port,
    _free_passive_range,
    _ftpgate_bin,
    _spawn,
    _stop,
    _wait_until_ready,
)
from e2e_support import require_tool, run

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
    binary = _ftpgate_bin()
    local_hash = subprocess.run(
        [str(binary), "hash-password", "--password", "local-pw"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    port = _free_control_port()
    lo, hi = _free_passive_range(exclude=port)
    config = tmp_path / "ftpgate.toml"
    config.write_text(f"""
[server]
listen = ["127.0.0.1:{port}"]
passive_ports = "{lo}-{hi}"
ban_after_failures = 3
login_failure_delay_ms = 100

[[auth]]
type = "http"
url = "http://127.0.0.1:{service.port}/login"
timeout_secs = 2

[[auth]]
type = "file"

[[users]]
name = "local"
password_hash = "{local_hash}"
home = "{root / 'local'}"
""", encoding="utf-8")
    log = tmp_path / "server.log"
    proc = _spawn([str(binary), "serve", "--config", str(config)], tmp_path, log)
    try:
        _wait_until_ready(proc, port, log)
        yield port, root, service
    finally:
        _stop(proc)
        service.stop()
        print(log.read_text(errors="replace")[-10000:])


def curl(*args: str) -> subprocess.CompletedProcess:
    require_tool("curl")
    return run(["curl", "-sS", "--max-time", "20", *args], check=False)


def test_curl_logs_in_through_the_service_and_transfers(gate, tmp_path):
    port, root, _ = gate
    upload = tmp_path / "up.bin"
    upload.write_bytes(b"through the login service\n" * 1000)
    done = curl("--user", "ann:ann-secret", "-T", str(upload), f"ftp://127.0.0.1:{port}/up.bin")
    assert done.returncode == 0, done.stderr
    assert (root / "ann" / "up.bin").read_bytes() == upload.read_bytes()
    got = curl("--user", "ann:ann-secret", f"ftp://127.0.0.1:{port}/up.bin")
    assert got.returncode == 0 and got.stdout == upload.read_bytes()
    # A wrong password: login denied (curl's code 67).
    wrong = curl("--user", "ann:nope", f"ftp://127.0.0.1:{port}/")
    assert wrong.returncode == 67, (wrong.returncode, wrong.stderr)
    # A name the service does not know goes on to [[users]].
    local = curl("--user", "local:local-pw", "-T", str(upload), f"ftp://127.0.0.1:{port}/l.bin")
    assert local.returncode == 0, local.stderr
    assert (root / "local" / "l.bin").is_file()


def test_lftp_gets_the_permissions_the_service_gives(gate, tmp_path):
    require_tool("lftp")
    port, root, _ = gate
    (tmp_path / "new.txt").write_text("x")
    proc = run(
        ["lftp", "-u", "viewer,look", "-p", str(port), "127.0.0.1", "-e",
         "set cmd:fail-exit false; set net:max-retries 1; cls -1; get readme.txt -o "
         f"{tmp_path / 'got.txt'}; put {tmp_path / 'new.txt'}; bye"],
        check=False, cwd=tmp_path,
    )
    out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    assert "readme.txt" in out, (out, err)
    assert (tmp_path / "got.txt").read_bytes() == b"read me\n"
    # "elr": the upload is refused with 550, nothing is stored.
    assert "550" in err, err
    assert not (root / "viewer" / "new.txt").exists()


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
