"""End-to-end tests of the network settings: the PASV address chosen by client
network (Python's ftplib from another loopback address), and passive port
sharing (curl and lftp transferring in parallel through one passive port).

Loopback addresses other than 127.0.0.1 stand for other client networks: a
client bound to 127.0.0.2 connects from it.
"""

from __future__ import annotations

import concurrent.futures
import ftplib
import io
import pathlib
import re
import time

import pytest

from e2e_support import random_bytes, require_tool, run, sha256_bytes, sha256_file

RULES_CONFIG = """
[server]
passive_address_rules = [
    { cidr = "127.0.0.2/32", address = "10.20.30.40" },
    { cidr = "192.168.0.0/16", address = "192.168.1.1" },
]
"""

SHARING_CONFIG = """
[server]
passive_port_sharing = true
"""


def only_ftpgate(server) -> None:
    if not server.is_ftpgate:
        pytest.skip("network settings are ftpgate's (the reference server has none)")


def login(server, source: str) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=30, source_address=(source, 0))
    ftp.connect(server.host, server.port)
    ftp.login(server.user, server.password)
    return ftp


@pytest.mark.server(config=RULES_CONFIG)
def test_ftplib_pasv_address_follows_the_client_network(ftp_server):
    only_ftpgate(ftp_server)
    data = random_bytes(700_000, 61)
    (ftp_server.root / "f.bin").write_bytes(data)

    # From 127.0.0.2 the rule's address is announced.
    ftp = login(ftp_server, "127.0.0.2")
    assert ftp.sock.getsockname()[0] == "127.0.0.2"
    host, port = ftplib.parse227(ftp.sendcmd("PASV"))
    assert host == "10.20.30.40"
    assert ftp_server.passive_ports[0] <= port <= ftp_server.passive_ports[1]
    # ftplib connects to the control connection's host, as clients behind NAT do, and
    # from its source address: transfers both ways work.
    got = bytearray()
    ftp.retrbinary("RETR f.bin", got.extend)
    assert sha256_bytes(bytes(got)) == sha256_bytes(data)
    ftp.storbinary("STOR back.bin", io.BytesIO(data))
    assert sha256_file(ftp_server.root / "back.bin") == sha256_bytes(data)
    # EPSV carries only a port.
    assert re.match(r"229 .*\(\|\|\|\d+\|\)", ftp.sendcmd("EPSV"))
    ftp.quit()

    # From 127.0.0.1 no rule matches: the control connection's own address.
    ftp = login(ftp_server, "127.0.0.1")
    host, _ = ftplib.parse227(ftp.sendcmd("PASV"))
    assert host == "127.0.0.1"
    ftp.quit()


def curl(server, source: str, *args: str, epsv: bool):
    require_tool("curl")
    cmd = [
        "curl", "--silent", "--show-error", "--verbose", "--fail",
        "--interface", source,
        "--user", f"{server.user}:{server.password}",
        "--connect-timeout", "10", "--max-time", "60",
        "--limit-rate", "2M",
    ]
    if not epsv:
        cmd.append("--disable-epsv")
    started = time.monotonic()
    proc = run(cmd + list(args), timeout=90)
    return proc, started, time.monotonic()


def data_ports(proc) -> set[int]:
    """The data ports curl connected to, from its verbose output."""
    err = proc.stderr.decode("utf-8", "replace")
    return {int(p) for p in re.findall(r"Connecting to [^ ]+ \([^)]+\) port (\d+)", err)}


@pytest.mark.server(config=SHARING_CONFIG, passive_range_size=1)
def test_curl_parallel_transfers_through_one_shared_passive_port(ftp_server, tmp_path):
    only_ftpgate(ftp_server)
    port = ftp_server.passive_ports[0]
    assert ftp_server.passive_ports == (port, port)
    size = 5 * 1024 * 1024  # with --limit-rate 2M, each transfer takes a few seconds
    sources = ["127.0.0.2", "127.0.0.3"]
    originals = {}
    for i in range(2):
        originals[i] = random_bytes(size, 70 + i)
        (ftp_server.root / f"down{i}.bin").write_bytes(originals[i])
        (tmp_path / f"up{i}.bin").write_bytes(originals[i])

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        downloads = [
            pool.submit(curl, ftp_server, sources[i], "-o", str(tmp_path / f"got{i}.bin"),
                        ftp_server.url(f"down{i}.bin"), epsv=(i == 0))
            for i in range(2)
        ]
        down = [f.result() for f in downloads]
        uploads = [
            pool.submit(curl, ftp_server, sources[i], "-T", str(tmp_path / f"up{i}.bin"),
                        ftp_server.url(f"up{i}.bin"), epsv=(i == 1))
            for i in range(2)
        ]
        up = [f.result() for f in uploads]

    for i in range(2):
        assert sha256_file(tmp_path / f"got{i}.bin") == sha256_bytes(originals[i])
        assert sha256_file(ftp_server.root / f"up{i}.bin") == sha256_bytes(originals[i])
    for results in (down, up):
        # Every data connection went to the one shared port ...
        for proc, _, _ in results:
            assert data_ports(proc) == {port}, proc.stderr.decode("utf-8", "replace")[-3000:]
        # ... at the same time.
        (_, start0, end0), (_, start1, end1) = results
        assert start0 < end1 and start1 < end0


def lftp_get(server, tmp_path: pathlib.Path, source: str, name: str, out: pathlib.Path):
    require_tool("lftp")
    home = tmp_path / f"lftp-home-{source}"
    home.mkdir(exist_ok=True)
    settings = [
        "set cmd:fail-exit yes",
        "set cmd:interactive no",
        "set ftp:passive-mode on",
        "set ftp:prefer-epsv no",
        "set ftp:ssl-allow no",
        f"set net:socket-bind-ipv4 {source}",
        "set net:limit-rate 2M",
        "set net:max-retries 1",
        "set net:timeout 10",
        "set xfer:log no",
    ]
    script = settings + [f"get {name} -o {out}", f"put {out} -o {name}.back", "quit"]
    return run(
        ["lftp", "-u", f"{server.user},{server.password}", "-p", str(server.port), server.host,
         "-e", "; ".join(script)],
        timeout=90,
        env={"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "HOME": str(home),
             "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local")},
    )


@pytest.mark.server(config=SHARING_CONFIG, passive_range_size=1)
def test_lftp_parallel_sessions_through_one_shared_passive_port(ftp_server, tmp_path):
    only_ftpgate(ftp_server)
    size = 4 * 1024 * 1024
    sources = ["127.0.0.4", "127.0.0.5", "127.0.0.6"]
    originals = {}
    for i in range(len(sources)):
        originals[i] = random_bytes(size, 80 + i)
        (ftp_server.root / f"l{i}.bin").write_bytes(originals[i])
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(sources)) as pool:
        futures = [
            pool.submit(lftp_get, ftp_server, tmp_path, source, f"l{i}.bin",
                        tmp_path / f"l{i}.out")
            for i, source in enumerate(sources)
        ]
        for f in futures:
            f.result()
    for i in range(len(sources)):
        want = sha256_bytes(originals[i])
        assert sha256_file(tmp_path / f"l{i}.out") == want
        assert sha256_file(ftp_server.root / f"l{i}.bin.back") == want
    # Nothing was refused: every data connection found its session.
    assert "refused a data connection" not in ftp_server.log()
