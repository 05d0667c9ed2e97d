"""End-to-end tests of what an operator configures: greetings and messages, as real clients
(Python ftplib, curl) see them."""

from __future__ import annotations

import ftplib

import pytest

from e2e_support import require_tool, run

BANNER_CONFIG = '''
[server]
banner = """
Welcome to the test server.
Unauthorised access is prohibited.
Files are kept for 7 days."""
login_message = """
You are logged in.
Uploads go to /incoming."""
'''


@pytest.mark.server(config=BANNER_CONFIG)
def test_ftplib_reads_a_multi_line_banner_and_login_message(ftp_server):
    if not ftp_server.is_ftpgate:
        pytest.skip("the banner and login message are ftpgate settings")
    ftp = ftplib.FTP()
    welcome = ftp.connect(ftp_server.host, ftp_server.port, timeout=10)
    assert welcome.splitlines() == [
        "220-Welcome to the test server.",
        " Unauthorised access is prohibited.",
        "220 Files are kept for 7 days.",
    ]
    reply = ftp.login(ftp_server.user, ftp_server.password)
    assert reply.splitlines() == [
        "230-You are logged in.",
        " Uploads go to /incoming.",
        f"230 User {ftp_server.user} logged in",
    ]
    # The dialogue goes on in step after the multi-line replies.
    assert ftp.pwd() == "/"
    ftp.quit()


@pytest.mark.server(config=BANNER_CONFIG)
def test_curl_reads_a_multi_line_banner_and_login_message(ftp_server):
    if not ftp_server.is_ftpgate:
        pytest.skip("the banner and login message are ftpgate settings")
    require_tool("curl")
    (ftp_server.root / "hello.txt").write_bytes(b"hello\n")
    proc = run(
        [
            "curl", "--silent", "--show-error", "--verbose", "--noproxy", "*",
            "--connect-timeout", "10", "--max-time", "30",
            "--user", f"{ftp_server.user}:{ftp_server.password}",
            ftp_server.url("hello.txt"),
        ],
        timeout=40,
    )
    assert proc.stdout == b"hello\n"
    err = proc.stderr.decode("utf-8", errors="replace")
    for line in (
        "< 220-Welcome to the test server.",
        "< 220 Files are kept for 7 days.",
        "< 230-You are logged in.",
        f"< 230 User {ftp_server.user} logged in",
    ):
        assert line in err, f"{line!r} not in curl's trace:\n{err[-4000:]}"
