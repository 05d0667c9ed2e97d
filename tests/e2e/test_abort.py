"""ABOR as clients really send it: in line (lftp), as TCP urgent data (Python's
ftplib), and as the RFC 959 Telnet IP / DM urgent sequence (BSD ftp, tnftp), on
plain and TLS control connections. An aborted download answers 426 then 226 and
the session goes on; an aborted upload commits nothing."""

from __future__ import annotations

import ftplib
import os
import re
import signal
import socket
import ssl
import subprocess
import time

from e2e_support import random_bytes, require_tool, sha256_bytes, sha256_file, write_random

TIMEOUT = 15
BIG = 64 * 1024 * 1024
IAC, IP, DM = b"\xff", b"\xf4", b"\xf2"


def login(server) -> ftplib.FTP:
    client = ftplib.FTP(timeout=TIMEOUT)
    client.connect(server.host, server.port)
    client.login(server.user, server.password)
    client.voidcmd("TYPE I")
    return client


def test_ftplib_abort_during_retr(ftp_server):
    digest = sha256_bytes(write_random(ftp_server.root / "big.bin", BIG, 1))
    ftp = login(ftp_server)
    conn = ftp.transfercmd("RETR big.bin")
    assert len(conn.recv(65536)) > 0
    # ftplib sends "ABOR\r\n" with MSG_OOB: the line feed is the urgent byte.
    first = ftp.abort()
    conn.close()
    assert first[:3] in ("426", "226"), first
    if first.startswith("426"):
        assert ftp.getresp().startswith("226")
    assert ftp.voidcmd("NOOP").startswith("200")
    assert ftp.size("big.bin") == BIG
    ftp.quit()
    # The file is untouched and still served whole.
    assert sha256_file(ftp_server.root / "big.bin") == digest


def test_ftplib_abort_during_stor_commits_nothing(ftp_server):
    (ftp_server.root / "keep.bin").write_bytes(b"old contents")
    ftp = login(ftp_server)
    for name in ("fresh.bin", "keep.bin"):
        conn = ftp.transfercmd(f"STOR {name}")
        conn.sendall(random_bytes(1024 * 1024, 7))
        first = ftp.abort()
        conn.close()
        assert first.startswith("426"), first
        assert ftp.getresp().startswith("226")
        assert ftp.voidcmd("NOOP").startswith("200")
    assert not (ftp_server.root / "fresh.bin").exists()
    assert (ftp_server.root / "keep.bin").read_bytes() == b"old contents"
    # The session goes on: a whole upload still works.
    data = random_bytes(300_000, 8)
    ftp.storbinary("STOR after.bin", __import__("io").BytesIO(data))
    ftp.quit()
    assert sha256_file(ftp_server.root / "after.bin") == sha256_bytes(data)


def read_reply(sock_file) -> str:
    """One whole reply (multi-line aware) from a file made of the control socket."""
    line = sock_file.readline().decode("utf-8", "replace")
    assert line, "connection closed"
    if len(line) >= 4 and line[3] == "-":
        code = line[:3]
        while True:
            more = sock_file.readline().decode("utf-8", "replace")
            assert more, "connection closed"
            line += more
            if more.startswith(code + " "):
                break
    return line


def test_rfc959_interrupt_and_synch_as_urgent_data(ftp_server):
    """IAC IP IAC with the last byte urgent, then DM ABOR in line: what tnftp sends."""
    write_random(ftp_server.root / "big.bin", BIG, 1)
    sock = socket.create_connection((ftp_server.host, ftp_server.port), timeout=TIMEOUT)
    f = sock.makefile("rb")
    assert read_reply(f).startswith("220")
    for cmd, code in (
        (f"USER {ftp_server.user}", "331"),
        (f"PASS {ftp_server.password}", "230"),
        ("TYPE I", "200"),
    ):
        sock.sendall(cmd.encode() + b"\r\n")
        assert read_reply(f).startswith(code)
    sock.sendall(b"EPSV\r\n")
    reply = read_reply(f)
    port = int(re.search(r"\|\|\|(\d+)\|", reply).group(1))
    data = socket.create_connection((ftp_server.host, port), timeout=TIMEOUT)
    sock.sendall(b"RETR big.bin\r\n")
    assert read_reply(f).startswith("150")
    assert len(data.recv(65536)) > 0
    sock.send(IAC + IP + IAC, socket.MSG_OOB)
    sock.sendall(DM + b"ABOR\r\n")
    first = read_reply(f)
    assert first[:3] in ("426", "226"), first
    if first.startswith("426"):
        assert read_reply(f).startswith("226")
    data.close()
    sock.sendall(b"NOOP\r\n")
    assert read_reply(f).startswith("200")
    sock.sendall(b"QUIT\r\n")
    assert read_reply(f).startswith("221")
    sock.close()


class TlsControl:
    """A TLS control connection driven through memory BIOs, so a record can be sent
    as TCP urgent data (its last byte urgent), as a client's urgent ABOR would be."""

    def __init__(self, host: str, port: int):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.plain = b""
        assert self._clear_reply().startswith("220")
        self.sock.sendall(b"AUTH TLS\r\n")
        assert self._clear_reply().startswith("234")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        self._flush()
        self.buf = b""

    def _clear_reply(self) -> str:
        while b"\r\n" not in self.plain:
            chunk = self.sock.recv(4096)
            assert chunk
            self.plain += chunk
        line, self.plain = self.plain.split(b"\r\n", 1)
        return line.decode()

    def _flush(self, flags: int = 0) -> None:
        out = self.outgoing.read()
        if out:
            if flags:
                self.sock.send(out, flags)
            else:
                self.sock.sendall(out)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, "connection closed"
        self.incoming.write(chunk)

    def send(self, line: str, urgent: bool = False) -> None:
        self.tls.write(line.encode() + b"\r\n")
        self._flush(socket.MSG_OOB if urgent else 0)

    def reply(self) -> str:
        while True:
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                text = line.decode()
                if len(text) >= 4 and text[3] == " ":
                    return text
            try:
                self.buf += self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._fill()

    def cmd(self, line: str) -> str:
        self.send(line)
        return self.reply()


def test_urgent_abor_on_a_tls_control_connection(ftps_server):
    write_random(ftps_server.root / "big.bin", BIG, 1)
    c = TlsControl(ftps_server.host, ftps_server.port)
    assert c.cmd(f"USER {ftps_server.user}").startswith("331")
    assert c.cmd(f"PASS {ftps_server.password}").startswith("230")
    assert c.cmd("PBSZ 0").startswith("200")
    assert c.cmd("PROT C").startswith("200")
    assert c.cmd("TYPE I").startswith("200")
    port = int(re.search(r"\|\|\|(\d+)\|", c.cmd("EPSV")).group(1))
    data = socket.create_connection((ftps_server.host, port), timeout=TIMEOUT)
    assert c.cmd("RETR big.bin").startswith("150")
    assert len(data.recv(65536)) > 0
    # The TLS record carrying ABOR goes out with its last byte as urgent data.
    c.send("ABOR", urgent=True)
    first = c.reply()
    assert first[:3] in ("426", "226"), first
    if first.startswith("426"):
        assert c.reply().startswith("226")
    data.close()
    assert c.cmd("NOOP").startswith("200")
    assert c.cmd("QUIT").startswith("221")


def test_tnftp_interrupted_get_then_the_session_goes_on(ftp_server, tmp_path):
    tnftp = require_tool("tnftp")
    write_random(ftp_server.root / "big.bin", BIG, 1)
    (ftp_server.root / "small.txt").write_bytes(b"small file\n")
    script = (
        f"open {ftp_server.host} {ftp_server.port}\n"
        f"user {ftp_server.user} {ftp_server.password}\n"
        "binary\n"
        "passive on\n"
        "rate get 2000000\n"
        f"get big.bin {tmp_path / 'big.part'}\n"
        f"get small.txt {tmp_path / 'small.txt'}\n"
        "quit\n"
    )
    proc = subprocess.Popen(
        [tnftp, "-n", "-v"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    assert proc.stdin is not None
    proc.stdin.write(script.encode())
    proc.stdin.flush()
    # Ctrl-C once the download is under way: tnftp sends IAC IP IAC (urgent), DM, ABOR.
    part = tmp_path / "big.part"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (not part.exists() or part.stat().st_size == 0):
        time.sleep(0.05)
    assert part.exists(), "tnftp did not start the download"
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"tnftp hung after the interrupt:\n{out.decode(errors='replace')}")
    text = out.decode(errors="replace")
    assert "426" in text, text
    assert (tmp_path / "small.txt").read_bytes() == b"small file\n", text
    assert os.path.getsize(part) < BIG

