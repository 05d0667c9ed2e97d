"""End-to-end tests driving the server with Python's ftplib, command by command."""

from __future__ import annotations

import calendar
import ftplib
import io
import os
import re
import socket
import struct
import time

import pytest

from e2e_support import random_bytes, sha256_bytes, sha256_file, write_random

TIMEOUT = 15


@pytest.fixture
def ftp(ftp_server):
    client = ftplib.FTP(timeout=TIMEOUT, encoding="utf-8")
    client.connect(ftp_server.host, ftp_server.port)
    client.login(ftp_server.user, ftp_server.password)
    try:
        yield client
    finally:
        try:
            client.quit()
        except ftplib.all_errors:
            client.close()


def retr_bytes(ftp: ftplib.FTP, name: str, rest=None) -> bytes:
    buf = io.BytesIO()
    ftp.retrbinary(f"RETR {name}", buf.write, rest=rest)
    return buf.getvalue()


def utc_stamp(ts: float) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(ts))


def parse_stamp(stamp: str) -> float:
    """YYYYMMDDHHMMSS[.sss] (UTC) to a POSIX timestamp."""
    m = re.fullmatch(r"(\d{14})(?:\.(\d+))?", stamp)
    assert m, f"bad time value {stamp!r}"
    whole = calendar.timegm(time.strptime(m.group(1), "%Y%m%d%H%M%S"))
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return whole + frac


def reply_code(exc: BaseException) -> str:
    return str(exc)[:3]


# --- session basics -------------------------------------------------------

def test_greeting_login_and_quit(ftp_server):
    client = ftplib.FTP(timeout=TIMEOUT)
    welcome = client.connect(ftp_server.host, ftp_server.port)
    assert welcome.startswith("220")
    assert client.login(ftp_server.user, ftp_server.password).startswith("230")
    assert client.sendcmd("NOOP").startswith("200")
    assert client.sendcmd("SYST").startswith("215")
    assert client.quit().startswith("221")


def test_wrong_password_is_rejected(ftp_server):
    client = ftplib.FTP(timeout=TIMEOUT)
    client.connect(ftp_server.host, ftp_server.port)
    with pytest.raises(ftplib.error_perm) as exc:
        client.login(ftp_server.user, ftp_server.password + "x")
    assert reply_code(exc.value) == "530"
    client.close()


def test_commands_before_login_are_refused(ftp_server):
    (ftp_server.root / "secret.txt").write_bytes(b"secret")
    client = ftplib.FTP(timeout=TIMEOUT)
    client.connect(ftp_server.host, ftp_server.port)
    for cmd in ("PWD", "CWD /", "SIZE secret.txt", "DELE secret.txt", "MKD nope"):
        with pytest.raises(ftplib.error_perm) as exc:
            client.sendcmd(cmd)
        assert reply_code(exc.value) == "530", cmd
    client.close()
    assert (ftp_server.root / "secret.txt").exists()
    assert not (ftp_server.root / "nope").exists()


def test_feat(ftp):
    resp = ftp.sendcmd("FEAT")
    lines = resp.splitlines()
    assert lines[0].startswith("211-")
    assert lines[-1].startswith("211")
    features = {ln.strip().split(" ", 1)[0].upper(): ln.strip() for ln in lines[1:-1]}
    for feat in ("UTF8", "MLST", "EPSV", "SIZE", "MDTM", "REST"):
        assert feat in features, f"{feat} missing from FEAT:\n{resp}"
    assert features["REST"].upper() == "REST STREAM"
    mlst_facts = features["MLST"].split(" ", 1)[1].lower()
    for fact in ("type", "size", "modify", "perm"):
        assert fact in mlst_facts, f"MLST does not offer {fact}: {features['MLST']}"


def test_utf8_option(ftp):
    assert ftp.sendcmd("OPTS UTF8 ON").startswith("200")


def test_type_commands(ftp, ftp_server):
    assert ftp.sendcmd("TYPE I").startswith("200")
    assert ftp.sendcmd("TYPE A").startswith("200")
    if ftp_server.is_ftpgate:
        # RFC 959 form of the default type (pyftpdlib does not accept it).
        assert ftp.sendcmd("TYPE A N").startswith("200")
    with pytest.raises(ftplib.error_perm) as exc:
        ftp.sendcmd("TYPE Z")
    assert reply_code(exc.value) in ("501", "504")


# --- directories ----------------------------------------------------------

def test_pwd_mkd_cwd_rmd(ftp, ftp_server):
    assert ftp.pwd() == "/"
    made = ftp.mkd("sub")
    assert made.rstrip("/").endswith("sub")
    assert (ftp_server.root / "sub").is_dir()

    ftp.cwd("sub")
    assert ftp.pwd() == "/sub"
    ftp.mkd("inner dir ü")
    assert (ftp_server.root / "sub" / "inner dir ü").is_dir()
    ftp.cwd("inner dir ü")
    assert ftp.pwd() == "/sub/inner dir ü"
    assert ftp.sendcmd("CDUP").startswith(("200", "250"))
    assert ftp.pwd() == "/sub"
    ftp.cwd("/")
    assert ftp.pwd() == "/"

    ftp.rmd("sub/inner dir ü")
    assert not (ftp_server.root / "sub" / "inner dir ü").exists()
    ftp.rmd("/sub")
    assert not (ftp_server.root / "sub").exists()


def test_mkd_existing_and_rmd_non_empty_fail(ftp, ftp_server):
    (ftp_server.root / "full").mkdir()
    (ftp_server.root / "full" / "f").write_bytes(b"1")
    with pytest.raises(ftplib.error_perm) as exc:
        ftp.mkd("full")
    assert reply_code(exc.value) == "550"
    with pytest.raises(ftplib.error_perm) as exc:
        ftp.rmd("full")
    assert reply_code(exc.value) == "550"
    assert (ftp_server.root / "full" / "f").read_bytes() == b"1"


def test_cannot_leave_root(ftp, ftp_server, tmp_path):
    outside = tmp_path / "outside.txt"  # sibling of the served root
    outside.write_bytes(b"must not be served")
    ftp.cwd("..")
    assert ftp.pwd() == "/"
    ftp.cwd("/../..")
    assert ftp.pwd() == "/"
    for path in ("../outside.txt", "/../outside.txt", "../../" + str(outside).lstrip("/")):
        with pytest.raises(ftplib.error_perm) as exc:
            retr_bytes(ftp, path)
        assert reply_code(exc.value) == "550", path
    # ".." at the root either is refused or stays at the root.
    try:
        ftp.storbinary("STOR ../escaped.txt", io.BytesIO(b"nope"))
    except ftplib.error_perm:
        pass
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path.parent / "escaped.txt").exists()
    assert outside.read_bytes() == b"must not be served"


def test_symlink_out_of_root_is_not_followed(ftp, ftp_server, tmp_path):
    outside = tmp_path / "outside-secret.txt"
    outside.write_bytes(b"secret outside the root")
    (ftp_server.root / "link").symlink_to(outside)
    with pytest.raises(ftplib.error_perm) as exc:
        retr_bytes(ftp, "link")
    assert reply_code(exc.value) == "550"
    # Writing to the link may be refused, or may replace the link inside the
    # root; it must never write through to the target.
    try:
        ftp.storbinary("STOR link", io.BytesIO(b"overwritten"))
    except ftplib.error_perm:
        pass
    try:
        ftp.storbinary("APPE link", io.BytesIO(b"appended"))
    except ftplib.error_perm:
        pass
    assert outside.read_bytes() == b"secret outside the root"


# --- binary transfers -----------------------------------------------------

def test_storbinary_retrbinary(ftp, ftp_server):
    data = random_bytes(3 * 1024 * 1024 + 5, seed=11)
    resp = ftp.storbinary("STOR blob.bin", io.BytesIO(data))
    assert resp.startswith("226")
    assert sha256_file(ftp_server.root / "blob.bin") == sha256_bytes(data)
    assert sha256_bytes(retr_bytes(ftp, "blob.bin")) == sha256_bytes(data)


def test_utf8_file_name(ftp, ftp_server):
    name = "ünïcødé файл 文件 #%.txt"
    ftp.storbinary(f"STOR {name}", io.BytesIO(b"hello utf-8"))
    assert (ftp_server.root / name).read_bytes() == b"hello utf-8"
    assert name in ftp.nlst()
    assert retr_bytes(ftp, name) == b"hello utf-8"


def test_size_and_mdtm(ftp, ftp_server):
    data = write_random(ftp_server.root / "stamped.bin", 54321, seed=12)
    when = calendar.timegm((2021, 3, 4, 5, 6, 7, 0, 0, 0))
    os.utime(ftp_server.root / "stamped.bin", (when, when))
    ftp.voidcmd("TYPE I")
    assert ftp.size("stamped.bin") == len(data)
    resp = ftp.sendcmd("MDTM stamped.bin")
    code, stamp = resp.split(" ", 1)
    assert code == "213"
    assert parse_stamp(stamp.strip()) == when
    with pytest.raises(ftplib.error_perm) as exc:
        ftp.size("missing.bin")
    assert reply_code(exc.value) == "550"
    with pytest.raises(ftplib.error_perm) as exc:
        ftp.sendcmd("MDTM missing.bin")
    assert reply_code(exc.value) == "550"


def test_mfmt_sets_modification_time(ftp, ftp_server):
    (ftp_server.root / "touch.txt").write_bytes(b"t")
    resp = ftp.sendcmd("MFMT 20200102030405 touch.txt")
    assert resp.startswith("213")
    assert "20200102030405" in resp
    expected = calendar.timegm((2020, 1, 2, 3, 4, 5, 0, 0, 0))
    assert int((ftp_server.root / "touch.txt").stat().st_mtime) == expected
    code, stamp = ftp.sendcmd("MDTM touch.txt").split(" ", 1)
    assert code == "213"
    assert parse_stamp(stamp.strip()) == expected


def test_rename_and_delete(ftp, ftp_server):
    (ftp_server.root / "a.txt").write_bytes(b"AAA")
    (ftp_server.root / "dir1").mkdir()
    resp = ftp.rename("a.txt", "dir1/b c.txt")
    assert resp.startswith("250")
    assert not (ftp_server.root / "a.txt").exists()
    assert (ftp_server.root / "dir1" / "b c.txt").read_bytes() == b"AAA"

    ftp.rename("dir1", "dir2")
    assert (ftp_server.root / "dir2" / "b c.txt").read_bytes() == b"AAA"

    assert ftp.delete("dir2/b c.txt").startswith("250")
    assert not (ftp_server.root / "dir2" / "b c.txt").exists()
    with pytest.raises(ftplib.error_perm) as exc:
        ftp.delete("dir2/b c.txt")
    assert reply_code(exc.value) == "550"


def test_rest_resumed_download(ftp, ftp_server):
    data = write_random(ftp_server.root / "resume.bin", 1024 * 1024 + 17, seed=13)
    for offset in (0, 1, 65536, 500_000, len(data) - 1, len(data)):
        assert retr_bytes(ftp, "resume.bin", rest=offset) == data[offset:], offset


def test_rest_resumed_upload(ftp, ftp_server):
    data = random_bytes(800_000, seed=14)
    (ftp_server.root / "up.bin").write_bytes(data[:300_000])
    ftp.storbinary("STOR up.bin", io.BytesIO(data[300_000:]), rest=300_000)
    assert sha256_file(ftp_server.root / "up.bin") == sha256_bytes(data)


def test_appe(ftp, ftp_server):
    (ftp_server.root / "log.txt").write_bytes(b"first\n")
    ftp.storbinary("APPE log.txt", io.BytesIO(b"second\n"))
    ftp.storbinary("APPE new-by-appe.txt", io.BytesIO(b"created\n"))
    assert (ftp_server.root / "log.txt").read_bytes() == b"first\nsecond\n"
    assert (ftp_server.root / "new-by-appe.txt").read_bytes() == b"created\n"


def test_stou(ftp, ftp_server):
    (ftp_server.root / "taken.txt").write_bytes(b"original")
    before = set(os.listdir(ftp_server.root))
    ftp.voidcmd("TYPE I")
    conn, _ = ftp.ntransfercmd("STOU")
    conn.sendall(b"unique content")
    conn.close()
    assert ftp.voidresp().startswith("226")
    created = set(os.listdir(ftp_server.root)) - before
    assert len(created) == 1, created
    assert (ftp_server.root / created.pop()).read_bytes() == b"unique content"
    assert (ftp_server.root / "taken.txt").read_bytes() == b"original"


# --- ASCII transfers ------------------------------------------------------

TEXT_LINES = ["first line", "", "  indented\ttab", "ünïcødé line", "last line"]


def test_storlines_stores_native_line_endings(ftp, ftp_server):
    source = ("\n".join(TEXT_LINES) + "\n").encode("utf-8")
    # ftplib sends each line terminated by CRLF in TYPE A.
    resp = ftp.storlines("STOR text.txt", io.BytesIO(source))
    assert resp.startswith("226")
    on_disk = (ftp_server.root / "text.txt").read_bytes()
    assert b"\r\n" not in on_disk
    assert on_disk == source

    lines: list[str] = []
    ftp.retrlines("RETR text.txt", lines.append)
    assert lines == TEXT_LINES


def test_ascii_download_sends_crlf(ftp, ftp_server):
    source = ("\n".join(TEXT_LINES) + "\n").encode("utf-8")
    (ftp_server.root / "unix.txt").write_bytes(source)
    ftp.voidcmd("TYPE A")
    with ftp.transfercmd("RETR unix.txt") as conn:
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    ftp.voidresp()
    assert b"".join(chunks) == source.replace(b"\n", b"\r\n")

    # Binary mode leaves the bytes alone.
    assert retr_bytes(ftp, "unix.txt") == source


# --- listings -------------------------------------------------------------

def _populate(root) -> dict[str, int]:
    sizes = {"one.txt": 10, "two words.bin": 2048, "ünï.dat": 3, "zero": 0}
    for name, size in sizes.items():
        (root / name).write_bytes(random_bytes(size, seed=size))
    (root / "folder").mkdir()
    (root / "folder" / "nested.txt").write_bytes(b"n")
    return sizes


def test_mlsd(ftp, ftp_server):
    sizes = _populate(ftp_server.root)
    entries = {
        name: facts
        for name, facts in ftp.mlsd("/")
        if facts.get("type", "").lower() not in ("cdir", "pdir")
    }
    assert set(entries) == set(sizes) | {"folder"}
    for name, size in sizes.items():
        facts = entries[name]
        assert facts["type"].lower() == "file", facts
        assert int(facts["size"]) == size, facts
        mtime = (ftp_server.root / name).stat().st_mtime
        assert abs(parse_stamp(facts["modify"]) - mtime) < 1.0, facts
        assert set(facts["perm"]) >= set("r"), facts
    folder = entries["folder"]
    assert folder["type"].lower() == "dir", folder
    assert "modify" in folder and "perm" in folder
    assert set(folder["perm"]) >= set("el"), folder


def test_mlst(ftp, ftp_server):
    _populate(ftp_server.root)
    resp = ftp.sendcmd("MLST two words.bin")
    lines = resp.splitlines()
    assert lines[0].startswith("250-") and lines[-1].startswith("250")
    # The fact line starts with a space, then "fact=value;...; pathname".
    fact_line = lines[1]
    assert fact_line.startswith(" ")
    facts_part, path = fact_line[1:].split(" ", 1)
    assert path.endswith("two words.bin")
    facts = dict(f.split("=", 1) for f in facts_part.rstrip(";").split(";"))
    facts = {k.lower(): v for k, v in facts.items()}
    assert facts["type"].lower() == "file"
    assert facts["size"] == "2048"
    with pytest.raises(ftplib.error_perm) as exc:
        ftp.sendcmd("MLST missing.bin")
    assert reply_code(exc.value) == "550"


def test_nlst(ftp, ftp_server):
    sizes = _populate(ftp_server.root)
    assert set(ftp.nlst()) == set(sizes) | {"folder"}
    ftp.cwd("folder")
    assert ftp.nlst() == ["nested.txt"]


def test_dir(ftp, ftp_server):
    sizes = _populate(ftp_server.root)
    lines: list[str] = []
    ftp.dir(lines.append)
    for name, size in sizes.items():
        matching = [ln for ln in lines if ln.endswith(" " + name)]
        assert len(matching) == 1, (name, lines)
        assert matching[0].startswith("-")
        assert f" {size} " in matching[0]
    folder = [ln for ln in lines if ln.endswith(" folder")]
    assert len(folder) == 1 and folder[0].startswith("d"), lines


# --- data connection modes ------------------------------------------------

def test_active_mode(ftp, ftp_server):
    ftp.set_pasv(False)
    data = random_bytes(2 * 1024 * 1024, seed=15)
    ftp.storbinary("STOR active.bin", io.BytesIO(data))
    assert sha256_file(ftp_server.root / "active.bin") == sha256_bytes(data)
    assert retr_bytes(ftp, "active.bin") == data
    assert "active.bin" in ftp.nlst()
    entries = dict(ftp.mlsd())
    assert int(entries["active.bin"]["size"]) == len(data)


def test_pasv_reply_uses_passive_range(ftp, ftp_server):
    lo, hi = ftp_server.passive_ports
    resp = ftp.sendcmd("PASV")
    host, port = ftplib.parse227(resp)
    assert host == "127.0.0.1"
    assert lo <= port <= hi
    resp = ftp.sendcmd("EPSV")
    _, port = ftplib.parse229(resp, ftp.sock.getpeername())
    assert lo <= port <= hi


def test_epsv_transfer(ftp, ftp_server):
    data = write_random(ftp_server.root / "epsv.bin", 300_000, seed=16)
    ftp.voidcmd("TYPE I")
    _, port = ftplib.parse229(ftp.sendcmd("EPSV"), ftp.sock.getpeername())
    with socket.create_connection((ftp_server.host, port), timeout=TIMEOUT) as conn:
        assert ftp.sendcmd("RETR epsv.bin").startswith(("125", "150"))
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    assert ftp.voidresp().startswith("226")
    assert received == data


def test_eprt_transfer(ftp, ftp_server):
    data = write_random(ftp_server.root / "eprt.bin", 300_000, seed=17)
    ftp.voidcmd("TYPE I")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        port = listener.getsockname()[1]
        assert ftp.sendcmd(f"EPRT |1|127.0.0.1|{port}|").startswith("200")
        assert ftp.sendcmd("RETR eprt.bin").startswith(("125", "150"))
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            received = b""
            while chunk := conn.recv(65536):
                received += chunk
    assert ftp.voidresp().startswith("226")
    assert received == data


# --- error replies --------------------------------------------------------

def test_retr_missing_file(ftp):
    with pytest.raises(ftplib.error_perm) as exc:
        retr_bytes(ftp, "no-such-file.bin")
    assert reply_code(exc.value) == "550"


def test_cwd_missing_dir(ftp):
    with pytest.raises(ftplib.error_perm) as exc:
        ftp.cwd("no-such-dir")
    assert reply_code(exc.value) == "550"
    assert ftp.pwd() == "/"


def test_cwd_to_file(ftp, ftp_server):
    (ftp_server.root / "plain.txt").write_bytes(b"p")
    with pytest.raises(ftplib.error_perm) as exc:
        ftp.cwd("plain.txt")
    assert reply_code(exc.value) == "550"


def test_rnto_without_rnfr(ftp, ftp_server):
    (ftp_server.root / "stay.txt").write_bytes(b"s")
    with pytest.raises(ftplib.error_perm) as exc:
        ftp.sendcmd("RNTO moved.txt")
    assert reply_code(exc.value) == "503"
    assert (ftp_server.root / "stay.txt").exists()
    assert not (ftp_server.root / "moved.txt").exists()


def test_rnfr_missing_file(ftp):
    with pytest.raises(ftplib.error_perm) as exc:
        ftp.sendcmd("RNFR ghost.txt")
    assert reply_code(exc.value) == "550"


def test_unknown_command(ftp):
    with pytest.raises(ftplib.error_perm) as exc:
        ftp.sendcmd("XYZZY")
    assert reply_code(exc.value) in ("500", "502")
    # The session is still usable afterwards.
    assert ftp.pwd() == "/"


# --- rough edges new users meet -----------------------------------------------

def test_size_right_after_login_in_the_default_type(ftp_server):
    (ftp_server.root / "f.txt").write_bytes(b"line one\nline two\n")
    client = ftplib.FTP(timeout=TIMEOUT)
    client.connect(ftp_server.host, ftp_server.port)
    client.login(ftp_server.user, ftp_server.password)
    # No TYPE command: the session is in TYPE A, the default.
    assert client.size("f.txt") == 18
    # REST stays refused in TYPE A.
    with pytest.raises(ftplib.error_perm) as exc:
        client.sendcmd("REST 5")
    assert reply_code(exc.value) == "504"
    client.quit()


def test_site_chmod_refuses_setuid_setgid_and_sticky(ftp, ftp_server):
    path = ftp_server.root / "tool.sh"
    path.write_bytes(b"#!/bin/sh\n")
    os.chmod(path, 0o644)
    for mode in ("4755", "2755", "1777", "6777"):
        with pytest.raises(ftplib.error_perm) as exc:
            ftp.sendcmd(f"SITE CHMOD {mode} tool.sh")
        assert reply_code(exc.value) == "550"
        assert "setuid" in str(exc.value)
        assert os.stat(path).st_mode & 0o7777 == 0o644
    assert ftp.sendcmd("SITE CHMOD 0750 tool.sh").startswith("200")
    assert os.stat(path).st_mode & 0o7777 == 0o750
    # A setgid directory made outside the server: LIST shows what MLST's unix.mode shows.
    shared = ftp_server.root / "shared"
    shared.mkdir()
    os.chmod(shared, 0o2775)
    lines = []
    ftp.retrlines("LIST", lines.append)
    line = next(l for l in lines if l.endswith(" shared"))
    assert line.startswith("drwxrwsr-x"), line
    facts = ftp.sendcmd("MLST shared")
    assert "unix.mode=02775;" in facts.lower(), facts


LIMIT_CONFIG = """
[server]
max_file_size = "1M"
"""


@pytest.mark.server(config=LIMIT_CONFIG)
def test_refused_or_aborted_appe_leaves_the_file_as_it_was(ftp, ftp_server):
    if not ftp_server.is_ftpgate:
        pytest.skip("max_file_size is ftpgate's setting")
    old = random_bytes(300_000, 41)
    (ftp_server.root / "log.bin").write_bytes(old)
    ftp.voidcmd("TYPE I")
    # Over max_file_size: 552 naming the limit, and the file keeps its 300,000 bytes. The
    # server stops reading at the limit and closes the data connection, so the client's
    # sending may end in a reset before it reads the reply.
    conn = ftp.transfercmd("APPE log.bin")
    try:
        conn.sendall(random_bytes(2_000_000, 42))
    except OSError:
        pass
    conn.close()
    with pytest.raises(ftplib.error_perm) as exc:
        ftp.voidresp()
    assert reply_code(exc.value) == "552"
    assert "maximum file size of 1 MiB" in str(exc.value)
    assert (ftp_server.root / "log.bin").read_bytes() == old
    # ABOR in the middle of an APPE: the same.
    conn = ftp.transfercmd("APPE log.bin")
    conn.sendall(random_bytes(200_000, 43))
    assert ftp.abort().startswith("426")
    conn.close()
    assert ftp.getresp().startswith("226")
    assert (ftp_server.root / "log.bin").read_bytes() == old
    # A data connection reset in the middle of an APPE (a client killed, a network drop; a
    # plain close would mean "end of file" in stream mode): the same, once the server noticed.
    other = ftplib.FTP(timeout=TIMEOUT)
    other.connect(ftp_server.host, ftp_server.port)
    other.login(ftp_server.user, ftp_server.password)
    other.voidcmd("TYPE I")
    conn = other.transfercmd("APPE log.bin")
    conn.sendall(random_bytes(200_000, 44))
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    with pytest.raises(ftplib.error_temp) as exc:
        other.getresp()
    assert reply_code(exc.value) == "426"
    other.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (ftp_server.root / "log.bin").stat().st_size != len(old):
        time.sleep(0.05)
    assert (ftp_server.root / "log.bin").read_bytes() == old
    # A whole APPE still appends.
    ftp.storbinary("APPE log.bin", io.BytesIO(b"tail"))
    assert (ftp_server.root / "log.bin").read_bytes() == old + b"tail"
