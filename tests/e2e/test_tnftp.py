"""End-to-end tests with tnftp, the BSD ftp client (NetBSD's, in Debian as tnftp)."""

from __future__ import annotations

import subprocess

from e2e_support import require_tool


def test_tnftp_size_after_ls_in_the_default_type(ftp_server):
    tnftp = require_tool("tnftp")
    (ftp_server.root / "f.txt").write_bytes(b"0123456789" * 7)
    script = (
        f"open {ftp_server.host} {ftp_server.port}\n"
        f"user {ftp_server.user} {ftp_server.password}\n"
        "ls\n"
        "size f.txt\n"
        "quit\n"
    )
    proc = subprocess.run(
        [tnftp, "-n", "-v"], input=script.encode(), capture_output=True, timeout=30
    )
    out = proc.stdout.decode(errors="replace")
    assert "213 70" in out or "f.txt\t70" in out, out
