"""End-to-end tests of what operators read: the transfer log and event hooks, with curl
moving the files (plain FTP and FTPS)."""

from __future__ import annotations

import json
import pathlib
import time

import pytest

from e2e_support import random_bytes, require_tool, run


def _curl(server, *args: str, tls: bool = False):
    require_tool("curl")
    cmd = [
        "curl", "--silent", "--show-error", "--globoff", "--noproxy", "*",
        "--connect-timeout", "10", "--max-time", "50",
        "--user", f"{server.user}:{server.password}",
    ]
    if tls:
        cmd += ["--ssl-reqd", "--insecure"]
    return run(cmd + list(args), timeout=60)


def _lines(path: pathlib.Path, count: int, timeout: float = 10.0) -> list[str]:
    """The file's lines once it has at least ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        lines = text.splitlines()
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def _xferlog_fields(line: str) -> list[str]:
    """xferlog(5): a 24-character ctime date, then 13 fields separated by spaces."""
    time.strptime(line[:24], "%a %b %d %H:%M:%S %Y")
    fields = [line[:24]] + line[24:].split()
    assert len(fields) == 14, line
    return fields


@pytest.mark.server(config='[log]\ntransfer_log = "xferlog"\n')
def test_curl_transfers_are_in_the_xferlog(ftp_server, tmp_path):
    data = random_bytes(200_000, seed=7)
    src = tmp_path / "up load.bin"
    src.write_bytes(data)
    _curl(ftp_server, "-T", str(src), ftp_server.url("up%20load.bin"))
    _curl(ftp_server, "-o", str(tmp_path / "back.bin"), ftp_server.url("up%20load.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data

    lines = _lines(tmp_path / "xferlog", 2)
    assert len(lines) == 2, lines
    up, down = (_xferlog_fields(line) for line in lines)
    assert up[2:] == ["127.0.0.1", "200000", "/up_load.bin", "b", "_", "i", "r",
                      ftp_server.user, "ftp", "0", "*", "c"]
    assert down[2:] == ["127.0.0.1", "200000", "/up_load.bin", "b", "_", "o", "r",
                        ftp_server.user, "ftp", "0", "*", "c"]
    assert int(up[1]) >= 0


@pytest.mark.ftps(config='[log]\ntransfer_log = "transfers.json"\ntransfer_log_format = "json"\n')
def test_ftps_transfers_are_logged_as_tls_in_the_json_transfer_log(ftps_server, tmp_path):
    src = tmp_path / "secret.txt"
    src.write_bytes(b"over TLS\n")
    _curl(ftps_server, "-T", str(src), ftps_server.url("secret.txt"), tls=True)
    lines = _lines(tmp_path / "transfers.json", 1)
    record = json.loads(lines[0])
    assert record["direction"] == "upload"
    assert record["path"] == "/secret.txt"
    assert record["bytes"] == 9
    assert record["tls"] is True
    assert record["result"] == "complete"
    assert record["user"] == ftps_server.user


@pytest.mark.server(config="""
[[hooks]]
events = ["upload"]
command = ["/usr/bin/touch", "hooked-{event}-{size}"]
""")
def test_an_upload_hook_runs_after_a_curl_upload(ftp_server, tmp_path):
    src = tmp_path / "f.bin"
    src.write_bytes(b"12345")
    _curl(ftp_server, "-T", str(src), ftp_server.url("f.bin"))
    # The daemon runs in tmp_path, so the hook's relative file lands there.
    marker = tmp_path / "hooked-upload-5"
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), ftp_server.log()[-3000:]
