"""End-to-end tests of listings: wildcards with tnftp (mget, ls, mdelete) and Python's
ftplib (nlst), names sorted, and the listing time zone."""

from __future__ import annotations

import ftplib
import os
import pathlib
import shutil
import subprocess
import time

import pytest

TIMEOUT = 15
TNFTP = shutil.which("tnftp")

NAMES = ["m.txt", "b.txt", "z.log", "a.txt", "q.dat", "c.TXT", "y.txt", "k.log"]


def populate(root: pathlib.Path) -> None:
    for name in NAMES:
        (root / name).write_text(f"content of {name}\n", encoding="utf-8")
    sub = root / "sub"
    sub.mkdir()
    for name in ["two.txt", "one.txt", "three.log"]:
        (sub / name).write_text(name, encoding="utf-8")


def connect(server) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=TIMEOUT, encoding="utf-8")
    ftp.connect(server.host, server.port)
    ftp.login(server.user, server.password)
    return ftp


def only_ftpgate(server) -> None:
    if not server.is_ftpgate:
        pytest.skip("ftpgate settings (the reference server has none)")


def test_ftplib_nlst_with_wildcards(ftp_server):
    populate(ftp_server.root)
    ftp = connect(ftp_server)
    try:
        assert ftp.nlst("*.txt") == ["a.txt", "b.txt", "m.txt", "y.txt"]
        assert ftp.nlst("sub/*.txt") == ["sub/one.txt", "sub/two.txt"]
        assert ftp.nlst("[a-c]*") == ["a.txt", "b.txt", "c.TXT"]
        assert ftp.nlst("*.none") == []
        lines = []
        ftp.retrlines("LIST *.log", lines.append)
        assert [line.rsplit(" ", 1)[1] for line in lines] == ["k.log", "z.log"]
    finally:
        ftp.quit()


def test_listings_are_sorted(ftp_server):
    populate(ftp_server.root)
    ftp = connect(ftp_server)
    try:
        expected = sorted(NAMES + ["sub"])
        assert ftp.nlst() == expected
        assert [name for name, _ in ftp.mlsd()] == expected
        lines = []
        ftp.retrlines("LIST", lines.append)
        assert [line.rsplit(" ", 1)[1] for line in lines] == expected
    finally:
        ftp.quit()


def run_tnftp(server, script: str, cwd: pathlib.Path) -> str:
    if TNFTP is None:
        pytest.skip("tnftp is not installed")
    commands = f"user {server.user} {server.password}\nprompt\n{script}\nbye\n"
    result = subprocess.run(
        [TNFTP, "-n", "-p", server.host, str(server.port)],
        input=commands,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
    return result.stdout + result.stderr


def test_tnftp_mget_ls_and_mdelete_with_wildcards(ftp_server, tmp_path):
    populate(ftp_server.root)
    local = tmp_path / "local"
    # tnftp stores `sub/one.txt` (as NLST names it) only into an existing local directory.
    (local / "sub").mkdir(parents=True)
    out = run_tnftp(ftp_server, "mget *.txt\nmget sub/*.txt\nls *.log\nmdelete *.log", local)
    assert sorted(p.name for p in local.iterdir()) == ["a.txt", "b.txt", "m.txt", "sub", "y.txt"], out
    assert sorted(p.name for p in (local / "sub").iterdir()) == ["one.txt", "two.txt"], out
    assert (local / "a.txt").read_text(encoding="utf-8") == "content of a.txt\n"
    assert "k.log" in out and "z.log" in out, out
    assert "No such file" not in out, out
    # mdelete removed the matches and nothing else.
    remaining = sorted(p.name for p in ftp_server.root.iterdir())
    assert remaining == sorted([n for n in NAMES if not n.endswith(".log")] + ["sub"])


TZ_CONFIG = """
[server]
listing_time_zone = "Asia/Kolkata"
"""


@pytest.mark.server(config=TZ_CONFIG)
def test_list_times_in_the_configured_zone(ftp_server):
    only_ftpgate(ftp_server)
    path = ftp_server.root / "f.txt"
    path.write_text("x", encoding="utf-8")
    when = int(time.time()) - 3600
    os.utime(path, (when, when))
    local = when + 5 * 3600 + 1800  # UTC+05:30, no daylight saving time
    ftp = connect(ftp_server)
    try:
        lines = []
        ftp.retrlines("LIST f.txt", lines.append)
        assert lines[0].endswith(f"{local // 3600 % 24:02d}:{local // 60 % 60:02d} f.txt"), lines
        # MDTM stays UTC.
        assert ftp.sendcmd("MDTM f.txt") == "213 " + time.strftime(
            "%Y%m%d%H%M%S", time.gmtime(when)
        )
    finally:
        ftp.quit()


def test_unknown_time_zone_is_a_config_error_naming_it(ftp_server, tmp_path):
    only_ftpgate(ftp_server)
    binary = ftp_server.proc.args[0]
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nlisting_time_zone = "Mars/Olympus"\n', encoding="utf-8")
    for args in (["check-config", str(config)], ["serve", "--config", str(config), "--listen", "127.0.0.1:0"]):
        result = subprocess.run([binary, *args], capture_output=True, text=True, timeout=30)
        assert result.returncode != 0, args
        assert "listing_time_zone" in result.stderr and "Mars/Olympus" in result.stderr, result.stderr
