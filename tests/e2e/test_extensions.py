"""Extensions driven by real clients: HASH and the X-digest commands, AVBL, SITE and MFF,
sent with Python's ftplib (``sendcmd``), curl (``-Q``) and lftp (``quote``)."""

from __future__ import annotations

import ftplib
import hashlib
import os
import zlib

import pytest

from e2e_support import write_random
from test_curl import curl
from test_lftp import lftp

MiB = 1024 * 1024

pytestmark = pytest.mark.skipif(
    os.environ.get("FTPGATE_E2E_SERVER", "ftpgate") != "ftpgate",
    reason="ftpgate's own extensions",
)


def login(server) -> ftplib.FTP:
    ftp = ftplib.FTP()
    ftp.connect(server.host, server.port, timeout=30)
    ftp.login(server.user, server.password)
    return ftp


def test_ftplib_hash_range_and_legacy_digests(ftp_server):
    data = write_random(ftp_server.root / "file.bin", 2 * MiB + 3, seed=7)
    with login(ftp_server) as ftp:
        assert "HASH SHA-256*" in ftp.sendcmd("FEAT")
        reply = ftp.sendcmd("HASH file.bin")
        assert reply == f"213 SHA-256 0-{len(data)} {hashlib.sha256(data).hexdigest()} /file.bin"
        assert ftp.sendcmd("OPTS HASH SHA-1") == "200 SHA-1"
        assert ftp.sendcmd("RANG 1000 1999").startswith("350")
        reply = ftp.sendcmd("HASH file.bin")
        assert reply.split()[2:4] == ["1000-2000", hashlib.sha1(data[1000:2000]).hexdigest()]
        assert ftp.sendcmd("XMD5 file.bin") == f"250 {hashlib.md5(data).hexdigest()}"
        assert ftp.sendcmd("XCRC file.bin") == f"250 {zlib.crc32(data):08x}"
        assert ftp.sendcmd("XSHA512 file.bin 0 10") == (
            f"250 {hashlib.sha512(data[:10]).hexdigest()}"
        )
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.sendcmd("HASH missing.bin")


def test_ftplib_avbl_site_and_mff(ftp_server):
    (ftp_server.root / "f.txt").write_bytes(b"x")
    with login(ftp_server) as ftp:
        free = int(ftp.sendcmd("AVBL").split()[1])
        assert free > 0
        assert ftp.sendcmd("SITE CHMOD 600 f.txt").startswith("200")
        assert (ftp_server.root / "f.txt").stat().st_mode & 0o777 == 0o600
        assert ftp.sendcmd("SITE UTIME f.txt 20200102030405").startswith("200")
        assert ftp.sendcmd("MDTM f.txt") == "213 20200102030405"
        assert ftp.sendcmd("MFF modify=20210102030405; f.txt").startswith("213 Modify=20210102030405;")
        assert ftp.sendcmd("MDTM f.txt") == "213 20210102030405"
        assert ftp.sendcmd("SITE SYMLINK f.txt link.txt").startswith("200")
        assert os.readlink(ftp_server.root / "link.txt") == "f.txt"
        assert ftp.sendcmd("LANG EN").startswith("200")


def test_curl_quote_xsha256(ftp_server):
    data = write_random(ftp_server.root / "c.bin", 100_000, seed=3)
    proc = curl(ftp_server, "-Q", "XSHA256 c.bin", "-Q", "AVBL", ftp_server.url(""), "-o", os.devnull)
    err = proc.stderr.decode("utf-8", errors="replace")
    assert f"< 250 {hashlib.sha256(data).hexdigest()}" in err, err[-3000:]
    assert "< 213 " in err, err[-3000:]


def test_lftp_quote_hash(ftp_server, tmp_path):
    data = write_random(ftp_server.root / "l.bin", 300_000, seed=4)
    proc = lftp(ftp_server, tmp_path, ["quote HASH l.bin", "quote XCRC l.bin"], passive=True)
    out = proc.stdout.decode("utf-8", errors="replace") + proc.stderr.decode("utf-8", errors="replace")
    assert hashlib.sha256(data).hexdigest() in out, out
    assert f"{zlib.crc32(data):08x}" in out, out


@pytest.mark.ftps(config="[features]\nmode_z = true\n")
def test_lftp_transfers_in_mode_z(ftps_server, tmp_path):
    """lftp negotiates MODE Z (ftp:use-mode-z) and moves files compressed both ways."""
    text = b"".join(b"line %d of a compressible file\n" % (i % 500) for i in range(200_000))
    local = tmp_path / "text.txt"
    local.write_bytes(text)
    out = tmp_path / "back.txt"
    proc = lftp(
        ftps_server,
        tmp_path,
        [
            "set ftp:use-mode-z yes",
            "debug 5",
            f"put {local} -o text.txt",
            f"get text.txt -o {out}",
        ],
        passive=True,
    )
    log = proc.stderr.decode("utf-8", errors="replace")
    assert "MODE Z" in log and "200 Mode set to Z" in log, log[-3000:]
    assert (ftps_server.root / "text.txt").read_bytes() == text
    assert out.read_bytes() == text
