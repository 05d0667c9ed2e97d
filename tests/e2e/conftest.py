"""Fixtures for the end-to-end suite.

Each test that asks for ``ftp_server`` gets a fresh ``ftpgate serve`` process
listening on a free loopback port, serving a fresh temporary root directory,
with one user and its own passive port range. ``ftps_server`` does the same
with FTPS turned on: a self-signed certificate, explicit FTPS (AUTH TLS) on the
control port and an implicit FTPS listener on a second port; the ``ftps``
marker adjusts it per test, and the ``server`` marker adjusts ``ftp_server``
(see ``pytest_configure``).

Environment:

``FTPGATE_BIN``
    Path of the ftpgate binary (default: ``target/debug/ftpgate`` under the
    repository root).
``FTPGATE_E2E_SERVER``
    ``ftpgate`` (default) or ``pyftpdlib``. The latter runs the same suite
    against ``python3 -m pyftpdlib`` as a reference server, to check the tests
    themselves; pyftpdlib is not needed for the normal run.
``FTPGATE_E2E_REQUIRE_TOOLS``
    When set to a non-empty value other than ``0`` (``scripts/test.sh`` sets
    it, and so does ``CI``), a missing client program (curl, lftp, rclone, tnftp)
    fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from typing import Iterator, Optional

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

STARTUP_TIMEOUT = 15.0
SHUTDOWN_GRACE = 5.0
PASSIVE_RANGE_SIZE = 20
MAX_STARTUP_FAILURES = 2

TEST_USER = "gateuser"
TEST_PASSWORD = "Pa55-word_e2e"


@dataclasses.dataclass
class FtpServer:
    """A running FTP server under test."""

    kind: str  # "ftpgate" or "pyftpdlib"
    host: str
    port: int
    user: str
    password: str
    root: pathlib.Path
    passive_ports: tuple[int, int]
    log_path: pathlib.Path
    proc: subprocess.Popen

    @property
    def is_ftpgate(self) -> bool:
        return self.kind == "ftpgate"

    def url(self, path: str = "") -> str:
        """``ftp://host:port/`` followed by ``path`` (already URL-encoded)."""
        return f"ftp://{self.host}:{self.port}/{path.lstrip('/')}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:  # pragma: no cover - diagnostics only
            return f"<could not read server log: {exc}>"


_startup_failures: list[str] = []


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_control_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_passive_range(exclude: int, size: int = PASSIVE_RANGE_SIZE) -> tuple[int, int]:
    """A run of ``size`` consecutive bindable ports below the ephemeral range."""
    rng = random.Random()
    for _ in range(200):
        lo = rng.randrange(20000, 32000 - size)
        hi = lo + size - 1
        if lo <= exclude <= hi:
            continue
        if all(_port_is_free(p) for p in range(lo, hi + 1)):
            return lo, hi
    raise RuntimeError("could not find a free passive port range")


def _server_kind() -> str:
    kind = os.environ.get("FTPGATE_E2E_SERVER", "ftpgate").strip().lower() or "ftpgate"
    if kind not in ("ftpgate", "pyftpdlib"):
        raise pytest.UsageError(f"FTPGATE_E2E_SERVER must be ftpgate or pyftpdlib, not {kind!r}")
    return kind


def _ftpgate_bin() -> pathlib.Path:
    raw = os.environ.get("FTPGATE_BIN")
    path = pathlib.Path(raw) if raw else REPO_ROOT / "target" / "debug" / "ftpgate"
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def _command(kind: str, root: pathlib.Path, port: int, prange: tuple[int, int]) -> list[str]:
    lo, hi = prange
    if kind == "pyftpdlib":
        return [
            sys.executable, "-m", "pyftpdlib",
            "-i", "127.0.0.1",
            "-p", str(port),
            "-d", str(root),
            "-u", TEST_USER,
            "-P", TEST_PASSWORD,
            "-w",
            "-r", f"{lo}-{hi}",
        ]
    binary = _ftpgate_bin()
    if not binary.is_file():
        pytest.fail(
            f"ftpgate binary not found at {binary}; build it with "
            "`cargo build --workspace --bins` or set FTPGATE_BIN",
            pytrace=False,
        )
    return [
        str(binary), "serve",
        "--root", str(root),
        "--listen", f"127.0.0.1:{port}",
        "--user", TEST_USER,
        "--password", TEST_PASSWORD,
        "--passive-ports", f"{lo}-{hi}",
    ]


def _wait_until_ready(proc: subprocess.Popen, port: int, log_path: pathlib.Path) -> None:
    """Wait until the control port answers with a 220 greeting."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last_error: Optional[BaseException] = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
                s.settimeout(2.0)
                greeting = s.recv(512)
                if greeting.startswith(b"220"):
                    try:
                        s.sendall(b"QUIT\r\n")
                        s.recv(512)
                    except OSError:
                        pass
                    return
                last_error = RuntimeError(f"unexpected greeting {greeting!r}")
        except OSError as exc:
            last_error = exc
        time.sleep(0.1)
    raise RuntimeError(
        f"server did not accept connections on 127.0.0.1:{port} within "
        f"{STARTUP_TIMEOUT:.0f}s (last error: {last_error})"
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=SHUTDOWN_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=SHUTDOWN_GRACE)


def _spawn(cmd: list[str], cwd: pathlib.Path, log_path: pathlib.Path) -> subprocess.Popen:
    """Start the server with stdout and stderr going to ``log_path``."""
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    env.setdefault("RUST_BACKTRACE", "1")
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
        )


SERVER_MARKER_OPTIONS = ("config", "passive_range_size")


@pytest.fixture
def ftp_server(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[FtpServer]:
    """A fresh server; adjust it with ``@pytest.mark.server(...)`` (see ``pytest_configure``)."""
    kind = _server_kind()
    marker = request.node.get_closest_marker("server")
    options = dict(marker.kwargs) if marker else {}
    unknown = set(options) - set(SERVER_MARKER_OPTIONS)
    if unknown or (marker and marker.args):
        raise pytest.UsageError(
            f"server marker takes only keyword arguments {SERVER_MARKER_OPTIONS}, got "
            f"{marker.args!r} {sorted(unknown)!r}"
        )
    config: Optional[str] = options.get("config")
    range_size = int(options.get("passive_range_size", PASSIVE_RANGE_SIZE))
    if len(_startup_failures) >= MAX_STARTUP_FAILURES:
        # Do not spend the startup timeout again on every remaining test.
        pytest.fail(
            f"{kind} failed to start {len(_startup_failures)} times already "
            f"(last: {_startup_failures[-1]}); not trying again",
            pytrace=False,
        )
    root = tmp_path / "ftproot"
    root.mkdir()
    port = _free_control_port()
    prange = _free_passive_range(exclude=port, size=range_size)
    cmd = _command(kind, root, port, prange)
    if config is not None and kind == "ftpgate":
        config_path = tmp_path / "ftpgate.toml"
        config_path.write_text(config, encoding="utf-8")
        cmd += ["--config", str(config_path)]
    log_path = tmp_path / "server.log"

    proc = _spawn(cmd, tmp_path, log_path)
    server = FtpServer(
        kind=kind,
        host="127.0.0.1",
        port=port,
        user=TEST_USER,
        password=TEST_PASSWORD,
        root=root,
        passive_ports=prange,
        log_path=log_path,
        proc=proc,
    )
    startup_error: Optional[str] = None
    try:
        _wait_until_ready(proc, port, log_path)
    except RuntimeError as exc:
        startup_error = str(exc)
    if startup_error is not None:
        _stop(proc)
        _startup_failures.append(startup_error)
        pytest.fail(
            f"{kind} did not come up: {startup_error}\ncommand: {' '.join(cmd)}\n"
            f"--- server output ---\n{server.log()}",
            pytrace=False,
        )

    try:
        yield server
    finally:
        _stop(proc)
        # Shown by pytest only when the test failed.
        tail = server.log()[-20000:]
        print(f"--- {kind} output (exit status {proc.returncode}) ---\n{tail}")


# --- FTPS -------------------------------------------------------------------

# The line the daemon prints on stdout at start with --tls-self-signed, in the
# documented form "ftpgate: TLS certificate SHA-256 fingerprint: AA:BB:...".
# Found leniently here (whatever stands between "certificate" and "SHA-256");
# test_tls.py checks the exact wording.
FINGERPRINT_RE = re.compile(
    r"^.*TLS certificate\b.*SHA-256 fingerprint: ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31})\s*$",
    re.MULTILINE,
)
FINGERPRINT_WAIT = 5.0

FTPS_MARKER_OPTIONS = ("tls_required", "config", "extra_args")


@dataclasses.dataclass
class FtpsServer(FtpServer):
    """A running ftpgate with FTPS: explicit on ``port``, implicit on ``implicit_port``."""

    implicit_port: int = 0
    # "AA:BB:..." as printed at start, or "" when no such line appeared.
    fingerprint: str = ""
    # The whole line it was printed on.
    fingerprint_line: str = ""
    tls_required: bool = False

    def ftps_url(self, path: str = "") -> str:
        """``ftps://host:implicit_port/`` followed by ``path`` (already URL-encoded)."""
        return f"ftps://{self.host}:{self.implicit_port}/{path.lstrip('/')}"


_ftps_startup_failures: list[str] = []


def _insecure_tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _wait_until_ready_implicit(proc: subprocess.Popen, port: int) -> None:
    """Wait until the implicit FTPS port completes a TLS handshake and sends 220."""
    ctx = _insecure_tls_context()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last_error: Optional[BaseException] = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as raw:
                raw.settimeout(2.0)
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    greeting = s.recv(512)
                    if greeting.startswith(b"220"):
                        try:
                            s.sendall(b"QUIT\r\n")
                            s.recv(512)
                        except OSError:
                            pass
                        return
                    last_error = RuntimeError(f"unexpected greeting {greeting!r}")
        except OSError as exc:  # includes ssl.SSLError
            last_error = exc
        time.sleep(0.1)
    raise RuntimeError(
        f"implicit FTPS listener 127.0.0.1:{port} did not answer within "
        f"{STARTUP_TIMEOUT:.0f}s (last error: {last_error})"
    )


def _printed_fingerprint(log_path: pathlib.Path) -> tuple[str, str]:
    """(fingerprint, whole line) from the server output, or ("", "")."""
    deadline = time.monotonic() + FINGERPRINT_WAIT
    while True:
        try:
            text = log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        m = FINGERPRINT_RE.search(text)
        if m:
            return m.group(1), m.group(0).strip()
        if time.monotonic() >= deadline:
            return "", ""
        time.sleep(0.1)


@pytest.fixture
def ftps_server(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[FtpsServer]:
    """ftpgate with ``--tls-self-signed`` and an ``--implicit-listen`` port.

    Adjust it with ``@pytest.mark.ftps(...)`` (see ``pytest_configure``).
    """
    kind = _server_kind()
    if kind != "ftpgate":
        pytest.skip("the FTPS tests run against ftpgate only (the reference run has no TLS)")
    marker = request.node.get_closest_marker("ftps")
    options = dict(marker.kwargs) if marker else {}
    unknown = set(options) - set(FTPS_MARKER_OPTIONS)
    if unknown or (marker and marker.args):
        raise pytest.UsageError(
            f"ftps marker takes only keyword arguments {FTPS_MARKER_OPTIONS}, got "
            f"{marker.args!r} {sorted(unknown)!r}"
        )
    tls_required = bool(options.get("tls_required", False))
    config: Optional[str] = options.get("config")
    extra_args = [str(a) for a in options.get("extra_args", ())]

    if len(_ftps_startup_failures) >= MAX_STARTUP_FAILURES:
        pytest.fail(
            f"ftpgate with FTPS failed to start {len(_ftps_startup_failures)} times already "
            f"(last: {_ftps_startup_failures[-1]}); not trying again",
            pytrace=False,
        )
    root = tmp_path / "ftproot"
    root.mkdir()
    port = _free_control_port()
    implicit_port = _free_control_port()
    while implicit_port == port:
        implicit_port = _free_control_port()
    prange = _free_passive_range(exclude=port)
    while prange[0] <= implicit_port <= prange[1]:
        prange = _free_passive_range(exclude=port)

    cmd = _command(kind, root, port, prange) + [
        "--tls-self-signed",
        "--implicit-listen", f"127.0.0.1:{implicit_port}",
    ]
    if tls_required:
        cmd.append("--tls-required")
    if config is not None:
        config_path = tmp_path / "ftpgate.toml"
        config_path.write_text(config, encoding="utf-8")
        cmd += ["--config", str(config_path)]
    cmd += extra_args
    log_path = tmp_path / "server.log"

    proc = _spawn(cmd, tmp_path, log_path)
    server = FtpsServer(
        kind=kind,
        host="127.0.0.1",
        port=port,
        user=TEST_USER,
        password=TEST_PASSWORD,
        root=root,
        passive_ports=prange,
        log_path=log_path,
        proc=proc,
        implicit_port=implicit_port,
        tls_required=tls_required,
    )
    startup_error: Optional[str] = None
    try:
        _wait_until_ready(proc, port, log_path)
        _wait_until_ready_implicit(proc, implicit_port)
    except RuntimeError as exc:
        startup_error = str(exc)
    if startup_error is not None:
        _stop(proc)
        _ftps_startup_failures.append(startup_error)
        pytest.fail(
            f"ftpgate with FTPS did not come up: {startup_error}\ncommand: {' '.join(cmd)}\n"
            f"--- server output ---\n{server.log()}",
            pytrace=False,
        )
    server.fingerprint, server.fingerprint_line = _printed_fingerprint(log_path)

    try:
        yield server
    finally:
        _stop(proc)
        tail = server.log()[-20000:]
        print(f"--- {kind} (FTPS) output (exit status {proc.returncode}) ---\n{tail}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "server(config=None, passive_range_size=20): how the ftp_server fixture starts "
        "ftpgate: config is TOML text written to a file and passed with --config (the flags "
        "still apply; ignored for the pyftpdlib reference run); passive_range_size is the "
        "number of ports in its --passive-ports range.",
    )
    config.addinivalue_line(
        "markers",
        "ftps(tls_required=False, config=None, extra_args=()): how the ftps_server fixture "
        "starts ftpgate: tls_required adds --tls-required; config is TOML text written to a "
        "file and passed with --config (the flags still apply); extra_args are appended to "
        "the command line.",
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    kind = os.environ.get("FTPGATE_E2E_SERVER", "ftpgate") or "ftpgate"
    lines = [f"e2e server: {kind}"]
    if kind == "ftpgate":
        lines.append(f"ftpgate binary: {_ftpgate_bin()}")
    return lines


@contextlib.contextmanager
def serving_config(tmp_path: pathlib.Path, body: str):
    """ftpgate serving a config file of its own: ``[server]`` with a free control port and
    passive range, then ``body`` (more ``[server]`` keys, then any other tables). Yields
    ``(port, log path)``; stops the server and prints the tail of its log afterwards."""
    port = _free_control_port()
    lo, hi = _free_passive_range(exclude=port)
    config = tmp_path / "ftpgate.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{port}"]\npassive_ports = "{lo}-{hi}"\n{body}',
        encoding="utf-8",
    )
    log = tmp_path / "server.log"
    proc = _spawn([str(_ftpgate_bin()), "serve", "--config", str(config)], tmp_path, log)
    try:
        _wait_until_ready(proc, port, log)
        yield port, log
    finally:
        _stop(proc)
        print(log.read_text(errors="replace")[-10000:])


def hash_password(password: str) -> str:
    """``ftpgate hash-password`` of ``password``, for a ``[[users]]`` entry."""
    return subprocess.run(
        [str(_ftpgate_bin()), "hash-password", "--password", password],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
