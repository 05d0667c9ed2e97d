"""End-to-end: per-user limits in the user an HTTP login service answers with.

A login service runs inside the test (the standard library's HTTP server on a free loopback
port), answering each user with the limits the test gives it; ftpgate (`[[auth]] type =
"http"`) enforces them: most sessions, denied networks, a disabled or expired account, a
download rate (measured with curl), and a limit the service gets wrong (421, never a user
without the limit).
"""

from __future__ import annotations

import ftplib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import serving_config
from e2e_support import require_tool, run

MIB = 1024 * 1024

# Each user's answer besides "home"; every password is "pw".
LIMITS = {
    "free": {},
    "solo": {"max_sessions": 1},
    "outsider": {"denied_networks": ["10.0.0.0/8", "127.0.0.0/8"]},
    "elsewhere": {"allowed_networks": ["192.0.2.0/24"]},
    "off": {"disabled": True},
    "expired": {"expires_at": "2020-01-01T00:00:00Z"},
    "later": {"expires_at": "2999-01-01T00:00:00Z", "allowed_networks": ["127.0.0.1"]},
    "slow": {"download_rate": MIB},
    "bad-sessions": {"max_sessions": "one"},
    "zero-sessions": {"max_sessions": 0},
    "zero-rate": {"download_rate": 0},
    "text-rate": {"upload_rate": "1M"},
    "bad-network": {"denied_networks": ["127.0.0.0/33"]},
    "bad-expiry": {"expires_at": "next tuesday"},
    "bad-disabled": {"disabled": "yes"},
}


def _service(root):
    class Login(BaseHTTPRequestHandler):
        def do_POST(self):
            login = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            name = login["username"]
            if name not in LIMITS:
                return self.answer(404, {})
            if login["password"] != "pw":
                return self.answer(401, {})
            self.answer(200, {"home": str(root / name), **LIMITS[name]})

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Login)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def gate(tmp_path):
    root = tmp_path / "homes"
    for name in LIMITS:
        (root / name).mkdir(parents=True)
    payload = bytes(range(256)) * (2 * MIB // 256)
    for name in ("free", "slow"):
        (root / name / "two.bin").write_bytes(payload)
    service = _service(root)
    try:
        with serving_config(tmp_path, f"""ban_after_failures = 0
login_failure_delay_ms = 0

[[auth]]
type = "http"
url = "http://127.0.0.1:{service.server_address[1]}/login"
timeout_secs = 5
""") as (port, log):
            yield port, payload, log
    finally:
        service.shutdown()


def _connect(port):
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=10)
    return ftp


def _refused(port, name, error=ftplib.error_perm, code="530"):
    ftp = _connect(port)
    with pytest.raises(error, match=f"^{code}"):
        ftp.login(name, "pw")
    ftp.close()


def test_max_sessions_one_refuses_a_second_session_until_the_first_ends(gate):
    port, _, _ = gate
    first = _connect(port)
    assert first.login("solo", "pw").startswith("230")
    _refused(port, "solo")
    # Another user is not held back by solo's sessions.
    other = _connect(port)
    assert other.login("free", "pw").startswith("230")
    other.quit()
    first.quit()
    deadline = time.monotonic() + 5
    while True:
        again = _connect(port)
        try:
            assert again.login("solo", "pw").startswith("230")
            again.quit()
            break
        except ftplib.error_perm:
            again.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("name", ["outsider", "elsewhere", "off", "expired"])
def test_a_network_disabled_or_expiry_the_service_gives_refuses_the_login(gate, name):
    port, _, log = gate
    _refused(port, name)
    assert "login refused" in log.read_text(errors="replace")


def test_limits_that_allow_the_client_let_it_in(gate):
    port, _, _ = gate
    ftp = _connect(port)
    assert ftp.login("later", "pw").startswith("230")
    ftp.quit()


@pytest.mark.parametrize("name", [
    "bad-sessions", "zero-sessions", "zero-rate", "text-rate", "bad-network", "bad-expiry",
    "bad-disabled",
])
def test_a_malformed_limit_is_unavailable_421_and_logged(gate, name):
    port, _, log = gate
    _refused(port, name, error=ftplib.error_temp, code="421")
    text = log.read_text(errors="replace")
    assert "authenticator is unavailable" in text and name in text, text[-3000:]


def _timed_download(port, name, payload, tmp_path):
    require_tool("curl")
    out = tmp_path / f"{name}.bin"
    started = time.monotonic()
    done = run(["curl", "-sS", "--max-time", "30", "--user", f"{name}:pw", "-o", str(out),
                f"ftp://127.0.0.1:{port}/two.bin"], check=False)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == payload
    return elapsed


def test_download_rate_slows_a_curl_download(gate, tmp_path):
    port, payload, _ = gate
    unlimited = _timed_download(port, "free", payload, tmp_path)
    limited = _timed_download(port, "slow", payload, tmp_path)
    print(f"2 MiB: unlimited {unlimited:.2f} s, at 1 MiB/s {limited:.2f} s")
    # 2 MiB at 1 MiB/s: about 2 s (a token bucket may start with a little credit).
    assert limited >= 1.6, (limited, unlimited)
    assert limited < 10, limited
    assert unlimited < 1.0, unlimited
