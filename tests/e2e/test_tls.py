"""End-to-end tests of FTPS (FTP over TLS, RFC 4217).

Every test gets its own ``ftps_server``: ftpgate with a self-signed certificate,
explicit FTPS (AUTH TLS) on the control port and implicit FTPS (TLS from the
first byte) on a second port. The clients are Python's ftplib, curl, lftp and
rclone; every transfer is checked by sha256 against the server root on disk.

By default ftpgate requires a TLS data connection to resume the control
connection's TLS session (like vsftpd's require_ssl_reuse). Clients that do not
(stock ftplib never resumes; rclone with several connections resumes whichever
connection's session it saw last) run against a server started with
``RELAXED_SESSION_REUSE``.
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import pathlib
import re
import select
import socket
import ssl

import pytest

from e2e_support import (
    assert_same_tree,
    make_tree,
    random_bytes,
    require_tool,
    run,
    sha256_bytes,
    sha256_file,
    tree_digest,
    tree_dirs,
    write_random,
)
from test_curl import curl
from test_rclone import RCLONE_NAMES, Rclone

TIMEOUT = 15
MiB = 1024 * 1024

# The server for clients that do not resume the control connection's TLS
# session on their data connections: the configuration file turns the
# requirement off (the command-line flags still apply). Tests without this
# marker run with the default, which requires session reuse.
RELAXED_SESSION_REUSE = pytest.mark.ftps(config="[tls]\nsession_reuse = \"off\"\n")


def tls_context() -> ssl.SSLContext:
    """A client context that accepts the self-signed certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as ``AA:BB:...``."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def reply_code(exc: BaseException) -> str:
    return str(exc)[:3]


class ResumingFTP_TLS(ftplib.FTP_TLS):
    """ftplib.FTP_TLS whose protected data connections resume the control session.

    Records, for every protected data connection, whether the server accepted
    the resumption.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.data_sessions_reused: list[bool] = []

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(
                conn, server_hostname=self.host, session=self.sock.session
            )
            self.data_sessions_reused.append(conn.session_reused)
        return conn, size


class ImplicitFTP_TLS(ResumingFTP_TLS):
    """Implicit FTPS with ftplib: the control connection is TLS from the first byte.

    It sends neither AUTH nor PBSZ/PROT: on the implicit listener data
    connections are protected without asking.
    """

    def connect(self, host="", port=0, timeout=-999, source_address=None):
        self.host, self.port = host, port
        if timeout != -999:
            self.timeout = timeout
        raw = socket.create_connection((host, port), self.timeout)
        self.sock = self.context.wrap_socket(raw, server_hostname=host)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        self._prot_p = True
        return self.welcome


CLIENTS = {
    "resuming": ResumingFTP_TLS,
    "stock": ftplib.FTP_TLS,
}
CLIENT_PARAMS = [
    pytest.param("resuming", id="resuming"),
    # ftplib.FTP_TLS as shipped opens every protected data connection with a
    # fresh TLS session.
    pytest.param("stock", id="stock-ftplib", marks=RELAXED_SESSION_REUSE),
]


def tls_login(server, client: str = "resuming") -> ftplib.FTP_TLS:
    cls = CLIENTS[client]
    ftp = cls(context=tls_context(), timeout=TIMEOUT, encoding="utf-8")
    ftp.connect(server.host, server.port)
    # FTP_TLS.login sends AUTH TLS first.
    assert ftp.login(server.user, server.password).startswith("230")
    assert isinstance(ftp.sock, ssl.SSLSocket)
    return ftp


def close(ftp: ftplib.FTP) -> None:
    try:
        ftp.quit()
    except ftplib.all_errors:
        ftp.close()


def retr_bytes(ftp: ftplib.FTP, name: str) -> bytes:
    buf = io.BytesIO()
    ftp.retrbinary(f"RETR {name}", buf.write)
    return buf.getvalue()


def exercise_transfers(ftp: ftplib.FTP, root: pathlib.Path, seed: int) -> None:
    """Upload, download and list over ``ftp``, checking everything against ``root``."""
    up = random_bytes(3 * MiB + 4321, seed=seed)
    ftp.storbinary("STOR upload.bin", io.BytesIO(up))
    assert sha256_file(root / "upload.bin") == sha256_bytes(up)
    ftp.storbinary("STOR zero.bin", io.BytesIO(b""))
    assert (root / "zero.bin").is_file()
    assert (root / "zero.bin").stat().st_size == 0

    down = write_random(root / "sub dir" / "from-server.bin", 2 * MiB + 99, seed=seed + 1)
    assert sha256_bytes(retr_bytes(ftp, "sub dir/from-server.bin")) == sha256_bytes(down)
    assert sha256_bytes(retr_bytes(ftp, "upload.bin")) == sha256_bytes(up)
    assert retr_bytes(ftp, "zero.bin") == b""

    entries = dict(ftp.mlsd(facts=["type", "size"]))
    assert entries["upload.bin"]["type"] == "file"
    assert int(entries["upload.bin"]["size"]) == len(up)
    assert int(entries["zero.bin"]["size"]) == 0
    assert entries["sub dir"]["type"] == "dir"
    assert set(entries) == {p.name for p in root.iterdir()}
    assert set(ftp.nlst()) == {p.name for p in root.iterdir()}
    assert ftp.nlst("sub dir") in (["from-server.bin"], ["sub dir/from-server.bin"])


def assert_all_resumed(ftp: ResumingFTP_TLS) -> None:
    reused = ftp.data_sessions_reused
    assert reused and all(reused), (
        f"protected data connections that resumed the control session: {reused}"
    )


# --- ftplib -------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENT_PARAMS)
@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
def test_ftplib_prot_p(ftps_server, client, passive):
    ftp = tls_login(ftps_server, client)
    try:
        assert ftp.prot_p().startswith("200")
        ftp.set_pasv(passive)
        exercise_transfers(ftp, ftps_server.root, seed=100 + passive)
        if isinstance(ftp, ResumingFTP_TLS):
            assert_all_resumed(ftp)
    finally:
        close(ftp)


def test_data_connection_must_resume_control_session(ftps_server):
    """By default a protected data connection with a fresh TLS session is refused.

    Stock ftplib.FTP_TLS never resumes the control session, so it serves as the
    client that does not. Each attempt gets its own control connection, as the
    client is out of step with the replies after the failed data connection.
    """
    root = ftps_server.root
    existing = write_random(root / "existing.bin", 1 * MiB, seed=105)

    ftp = tls_login(ftps_server, "stock")
    try:
        assert ftp.prot_p().startswith("200")
        with pytest.raises(ftplib.all_errors):
            ftp.storbinary("STOR fresh-session.bin", io.BytesIO(random_bytes(MiB, seed=106)))
    finally:
        ftp.close()
    assert not (root / "fresh-session.bin").exists()

    ftp = tls_login(ftps_server, "stock")
    received = io.BytesIO()
    try:
        assert ftp.prot_p().startswith("200")
        with pytest.raises(ftplib.all_errors):
            ftp.retrbinary("RETR existing.bin", received.write)
    finally:
        ftp.close()
    assert len(received.getvalue()) < len(existing)


def test_ftplib_prot_c(ftps_server):
    """Without --tls-required, PROT C gives clear data connections under a TLS control one."""
    ftp = tls_login(ftps_server)
    try:
        assert ftp.prot_p().startswith("200")
        assert ftp.prot_c().startswith("200")
        exercise_transfers(ftp, ftps_server.root, seed=110)
        assert ftp.data_sessions_reused == []
    finally:
        close(ftp)


def test_feat_and_pbsz(ftps_server):
    ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.connect(ftps_server.host, ftps_server.port)
    try:
        feat = ftp.sendcmd("FEAT")
        lines = [ln.strip().upper() for ln in feat.splitlines()[1:-1]]
        for feature in ("AUTH TLS", "PBSZ", "PROT"):
            assert feature in lines, feat
        # PBSZ and PROT are meaningless before AUTH.
        with pytest.raises(ftplib.error_perm) as exc:
            ftp.sendcmd("PBSZ 0")
        assert reply_code(exc.value) == "503"
    finally:
        close(ftp)


def test_certificate_fingerprint(ftps_server):
    printed = ftps_server.fingerprint
    assert printed, (
        "no 'TLS certificate SHA-256 fingerprint:' line in the server output:\n" + ftps_server.log()
    )
    assert printed == printed.upper()
    ftp = tls_login(ftps_server)
    try:
        der = ftp.sock.getpeercert(binary_form=True)
        assert fingerprint(der) == printed.upper()
    finally:
        close(ftp)

    # The implicit listener presents the same certificate.
    with socket.create_connection((ftps_server.host, ftps_server.implicit_port), timeout=TIMEOUT) as raw:
        with tls_context().wrap_socket(raw, server_hostname=ftps_server.host) as s:
            assert fingerprint(s.getpeercert(binary_form=True)) == printed.upper()

    # Trusted explicitly, the certificate verifies for the names it was made for.
    pem = ssl.DER_cert_to_PEM_cert(der)
    for name in ("localhost", "127.0.0.1"):
        ctx = ssl.create_default_context(cadata=pem)
        assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
        with socket.create_connection((ftps_server.host, ftps_server.implicit_port), timeout=TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname=name) as s:
                assert s.recv(512).startswith(b"220")

    # The line has the documented wording, for scripts that look for it.
    assert re.fullmatch(r"ftpgate: TLS certificate (\(self-signed\) )?SHA-256 fingerprint: [0-9A-F:]{95}",
                        ftps_server.fingerprint_line), ftps_server.fingerprint_line


@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
def test_ftplib_implicit_protects_data_by_default(ftps_server, passive):
    ftp = ImplicitFTP_TLS(context=tls_context(), timeout=TIMEOUT, encoding="utf-8")
    assert ftp.connect(ftps_server.host, ftps_server.implicit_port).startswith("220")
    try:
        # No AUTH (the connection is TLS already) and no PBSZ/PROT.
        assert ftp.login(ftps_server.user, ftps_server.password).startswith("230")
        ftp.set_pasv(passive)
        exercise_transfers(ftp, ftps_server.root, seed=120 + passive)
        assert_all_resumed(ftp)
    finally:
        close(ftp)


def test_implicit_port_does_not_speak_plain_ftp(ftps_server):
    with socket.create_connection((ftps_server.host, ftps_server.implicit_port), timeout=TIMEOUT) as s:
        s.settimeout(2.0)
        try:
            first = s.recv(512)
        except socket.timeout:
            first = b""  # waiting for a ClientHello, as it should
        assert not first.startswith(b"220"), first
        try:
            s.sendall(b"USER " + ftps_server.user.encode() + b"\r\n")
            s.settimeout(5.0)
            answer = s.recv(512)
        except (socket.timeout, ConnectionError):
            answer = b""
        assert not answer[:3].isdigit(), answer


# --- policy --------------------------------------------------------------------


@pytest.mark.ftps(tls_required=True)
def test_tls_required_refuses_plain_login(ftps_server):
    ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.connect(ftps_server.host, ftps_server.port)
    try:
        with pytest.raises(ftplib.error_perm) as exc:
            ftp.login(ftps_server.user, ftps_server.password)
        assert reply_code(exc.value) == "530"
        with pytest.raises(ftplib.error_perm) as exc:
            ftp.sendcmd("PWD")
        assert reply_code(exc.value) == "530"
    finally:
        close(ftp)


@pytest.mark.ftps(tls_required=True)
def test_tls_required_data_needs_prot_p(ftps_server):
    root = ftps_server.root
    existing = write_random(root / "existing.bin", 1 * MiB + 3, seed=130)
    ftp = tls_login(ftps_server)
    try:
        ftp.set_pasv(True)
        with pytest.raises(ftplib.error_perm) as exc:
            ftp.storbinary("STOR refused.bin", io.BytesIO(b"must not arrive"))
        assert reply_code(exc.value) == "521", str(exc.value)
        assert not (root / "refused.bin").exists()
        with pytest.raises(ftplib.error_perm) as exc:
            retr_bytes(ftp, "existing.bin")
        assert reply_code(exc.value) == "521", str(exc.value)
        with pytest.raises(ftplib.error_perm) as exc:
            ftp.nlst()
        assert reply_code(exc.value) == "521", str(exc.value)

        assert ftp.prot_p().startswith("200")
        assert sha256_bytes(retr_bytes(ftp, "existing.bin")) == sha256_bytes(existing)
        exercise_transfers(ftp, root, seed=131)
        ftp.set_pasv(False)
        assert sha256_bytes(retr_bytes(ftp, "upload.bin")) == sha256_file(root / "upload.bin")
    finally:
        close(ftp)


def read_line(sock: socket.socket) -> bytes:
    """One reply line, read byte by byte so nothing after it is consumed."""
    line = b""
    while not line.endswith(b"\r\n"):
        ch = sock.recv(1)
        if not ch:
            break
        line += ch
    return line


def test_pipelined_commands_after_auth_are_discarded(ftps_server):
    """USER/PASS sent in the same packet as AUTH TLS are dropped, never executed."""
    user, password = ftps_server.user, ftps_server.password
    with socket.create_connection((ftps_server.host, ftps_server.port), timeout=TIMEOUT) as raw:
        assert read_line(raw).startswith(b"220")
        raw.sendall(f"AUTH TLS\r\nUSER {user}\r\nPASS {password}\r\n".encode())
        reply = read_line(raw)
        assert reply.startswith(b"234 "), reply
        # Nothing more comes in the clear (such as a reply to the pipelined USER).
        readable, _, _ = select.select([raw], [], [], 0.5)
        assert not readable, raw.recv(4096, socket.MSG_PEEK)

        with tls_context().wrap_socket(raw, server_hostname=ftps_server.host) as s:
            s.sendall(b"PWD\r\n")
            reply = read_line(s)
            assert reply.startswith(b"530"), reply
            # A login over TLS works as usual afterwards.
            s.sendall(f"USER {user}\r\n".encode())
            assert read_line(s).startswith(b"331")
            s.sendall(f"PASS {password}\r\n".encode())
            assert read_line(s).startswith(b"230")
            s.sendall(b"PWD\r\n")
            assert read_line(s).startswith(b"257")
            s.sendall(b"QUIT\r\n")
            assert read_line(s).startswith(b"221")


# --- curl ----------------------------------------------------------------------

# name -> (extra curl options, command that must be sent, reply it must get)
CURL_MODES = {
    "epsv": ([], "> EPSV", "< 229"),
    "pasv": (["--disable-epsv"], "> PASV", "< 227"),
    "active": (["--ftp-port", "127.0.0.1"], "> EPRT |1|127.0.0.1|", "< 200"),
}


def curl_version() -> tuple[int, ...]:
    require_tool("curl")
    words = run(["curl", "--version"], timeout=10).stdout.decode().split()
    return tuple(int(x) for x in re.findall(r"\d+", words[1])[:3])


def curl_tls(server, *args: str, mode: str = "epsv", check: bool = True):
    """curl with certificate checks off; returns (process, verbose trace)."""
    opts, sent, reply = CURL_MODES[mode]
    proc = curl(server, "-k", *opts, *args, check=check)
    err = proc.stderr.decode("utf-8", errors="replace")
    if proc.returncode == 0:
        assert sent in err, f"curl did not send {sent[2:]!r}:\n{err[-4000:]}"
        assert reply in err[err.index(sent):], f"{sent[2:]!r} did not get {reply[2:]!r}:\n{err[-4000:]}"
    return proc, err


def curl_upload(server, local: pathlib.Path, url: str, stored: pathlib.Path, mode: str, *args: str) -> str:
    """Upload with curl; returns the trace.

    curl 7.87.0 to 7.88.x never start TLS on an active-mode data connection
    and send the data in the clear (curl/curl#10666, fixed in 8.0.0). With
    such a curl the server must refuse the upload, and the test stops there.
    """
    proc, err = curl_tls(server, *args, "-T", str(local), url, mode=mode, check=False)
    if proc.returncode != 0 and mode == "active" and (7, 87) <= curl_version() < (8, 0):
        assert not stored.exists(), "the server stored data sent in the clear under PROT P"
        pytest.xfail(f"curl {'.'.join(map(str, curl_version()))} sends active-mode FTPS data "
                     "without TLS (curl/curl#10666); the server refused it")
    assert proc.returncode == 0, f"curl failed with exit status {proc.returncode}:\n{err[-8000:]}"
    return err


def assert_protected(err: str, *, explicit: bool) -> None:
    """The trace shows TLS on the control and the data connection, and no CCC."""
    if explicit:
        assert "> AUTH SSL" in err or "> AUTH TLS" in err, err[-4000:]
        assert "< 234" in err, err[-4000:]
    else:
        assert "> AUTH" not in err, err[-4000:]
    assert "> PBSZ 0" in err, err[-4000:]
    assert "> PROT P" in err, err[-4000:]
    assert "CCC" not in err, err[-4000:]
    assert err.count("TLS handshake, Client hello") >= 2, err[-4000:]


@pytest.mark.parametrize("mode", list(CURL_MODES))
def test_curl_explicit(ftps_server, tmp_path, mode):
    root = ftps_server.root
    local = tmp_path / "upload.bin"
    data = write_random(local, 3 * MiB + 555, seed=140)
    err = curl_upload(ftps_server, local, ftps_server.url("up.bin"), root / "up.bin", mode, "--ssl-reqd")
    assert_protected(err, explicit=True)
    assert sha256_file(root / "up.bin") == sha256_bytes(data)

    out = tmp_path / "download.bin"
    _, err = curl_tls(ftps_server, "--ssl-reqd", "-o", str(out), ftps_server.url("up.bin"), mode=mode)
    assert_protected(err, explicit=True)
    assert sha256_file(out) == sha256_bytes(data)

    served = write_random(root / "dir" / "served.bin", 2 * MiB + 1, seed=141)
    out2 = tmp_path / "served.bin"
    curl_tls(ftps_server, "--ssl-reqd", "-o", str(out2), ftps_server.url("dir/served.bin"), mode=mode)
    assert sha256_file(out2) == sha256_bytes(served)

    proc, _ = curl_tls(ftps_server, "--ssl-reqd", "--list-only", ftps_server.url(""), mode=mode)
    assert set(proc.stdout.decode("utf-8").splitlines()) == {"up.bin", "dir"}


def test_curl_explicit_zero_byte(ftps_server, tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    err = curl_upload(ftps_server, empty, ftps_server.url("zero.bin"), ftps_server.root / "zero.bin",
                      "epsv", "--ssl-reqd")
    assert_protected(err, explicit=True)
    assert (ftps_server.root / "zero.bin").stat().st_size == 0
    proc, err = curl_tls(ftps_server, "--ssl-reqd", ftps_server.url("zero.bin"))
    assert_protected(err, explicit=True)
    assert proc.stdout == b""


@pytest.mark.parametrize("mode", ["epsv", "active"])
def test_curl_implicit(ftps_server, tmp_path, mode):
    root = ftps_server.root
    local = tmp_path / "upload.bin"
    data = write_random(local, 3 * MiB + 777, seed=150)
    err = curl_upload(ftps_server, local, ftps_server.ftps_url("implicit.bin"), root / "implicit.bin", mode)
    assert_protected(err, explicit=False)
    assert sha256_file(root / "implicit.bin") == sha256_bytes(data)

    out = tmp_path / "download.bin"
    _, err = curl_tls(ftps_server, "-o", str(out), ftps_server.ftps_url("implicit.bin"), mode=mode)
    assert_protected(err, explicit=False)
    assert sha256_file(out) == sha256_bytes(data)

    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    curl_upload(ftps_server, empty, ftps_server.ftps_url("zero.bin"), root / "zero.bin", mode)
    assert (root / "zero.bin").stat().st_size == 0
    proc, _ = curl_tls(ftps_server, ftps_server.ftps_url("zero.bin"), mode=mode)
    assert proc.stdout == b""


# --- lftp ----------------------------------------------------------------------


def q(path: pathlib.Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def lftp_tls(server, tmp_path: pathlib.Path, script: list[str], *, timeout: float = 180):
    require_tool("lftp")
    home = tmp_path / "lftp-home"
    home.mkdir(exist_ok=True)
    settings = [
        "set cmd:fail-exit yes",
        "set cmd:interactive no",
        "set ftp:passive-mode on",
        "set ftp:ssl-force true",
        "set ftp:ssl-protect-data true",
        "set ftp:ssl-protect-list true",
        "set ssl:verify-certificate no",
        "set net:max-retries 1",
        "set net:timeout 10",
        "set net:reconnect-interval-base 1",
        "set xfer:log no",
        "debug -o /dev/stderr 9",
    ]
    commands = "; ".join(settings + script + ["quit"])
    return run(
        ["lftp", "-u", f"{server.user},{server.password}", "-p", str(server.port), server.host,
         "-e", commands],
        timeout=timeout,
        env={"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "HOME": str(home),
             "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local")},
    )


def test_lftp_mirror_round_trip(ftps_server, tmp_path):
    local = tmp_path / "local"
    back = tmp_path / "back"
    expected = make_tree(local, files=50, max_size=256 * 1024, seed=160,
                         empty_dirs=["empty-dir"])
    assert any((local / rel).stat().st_size == 0 for rel in expected)

    proc = lftp_tls(ftps_server, tmp_path, [
        f"mirror -R --parallel=2 {q(local)} remote",
        f"mirror --parallel=2 remote {q(back)}",
    ])
    trace = proc.stderr.decode("utf-8", errors="replace")
    assert "---> AUTH TLS" in trace, trace[-3000:]
    assert "<--- 234" in trace, trace[-3000:]
    assert "---> PROT P" in trace, trace[-3000:]
    assert "---> USER" in trace[trace.index("---> AUTH TLS"):]

    assert_same_tree(expected, tree_digest(ftps_server.root / "remote"), "server root after mirror -R")
    assert_same_tree(expected, tree_digest(back), "tree mirrored back")
    assert tree_dirs(ftps_server.root / "remote") == tree_dirs(local)
    assert tree_dirs(back) == tree_dirs(local)


# --- rclone --------------------------------------------------------------------


def rclone_tls(server, tmp_path: pathlib.Path, implicit: bool) -> Rclone:
    if implicit:
        options = {"port": str(server.implicit_port), "tls": "true"}
    else:
        options = {"explicit_tls": "true"}
    return Rclone(server, tmp_path, **options, no_check_certificate="true")


# rclone keeps one TLS session per host for all its connections, so a data
# connection often resumes another control connection's session. The default
# server accepts that when both control connections belong to the same user
# (session_reuse = "user"), so rclone runs against the default server.
@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_rclone_copy_check_and_back(ftps_server, tmp_path, implicit):
    rc = rclone_tls(ftps_server, tmp_path, implicit)
    src = tmp_path / "src"
    back = tmp_path / "back"
    expected = make_tree(src, files=40, max_size=256 * 1024, seed=170 + implicit,
                         extra_names=RCLONE_NAMES)
    assert any((src / rel).stat().st_size == 0 for rel in expected)

    rc.run("copy", str(src), rc.path("dest"), "--transfers", "4")
    assert_same_tree(expected, tree_digest(ftps_server.root / "dest"), "server root after rclone copy")

    rc.run("check", str(src), rc.path("dest"))
    rc.run("check", "--download", str(src), rc.path("dest"))

    rc.run("copy", rc.path("dest"), str(back), "--transfers", "4")
    assert_same_tree(expected, tree_digest(back), "tree copied back")
    assert tree_dirs(back) == tree_dirs(src)

