"""Per-user policy with real clients: bandwidth limits (timed with ftplib's own callbacks),
sessions per user, disabled and expired accounts, allowed and denied networks."""

from __future__ import annotations

import ftplib
import io
import pathlib
import subprocess
import time

import pytest

from conftest import _ftpgate_bin

PASSWORD = "policy-pw"
RATE = 5 * 1024 * 1024  # "5M" in the config: 5 MiB/s
SIZE = 20 * 1024 * 1024


def _hash(password: str) -> str:
    out = subprocess.run(
        [str(_ftpgate_bin()), "hash-password", "--password", password],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


HASH = _hash(PASSWORD)


def _user(name: str, home: pathlib.Path, extra: str = "") -> str:
    return (
        "[[users]]\n"
        f'name = "{name}"\n'
        f'password_hash = "{HASH}"\n'
        f'home = "{home}"\n'
        "create_home = true\n"
        f"{extra}\n"
    )


def _login(server, user: str) -> ftplib.FTP:
    ftp = ftplib.FTP()
    ftp.connect(server.host, server.port, timeout=30)
    ftp.login(user, PASSWORD)
    return ftp


def _config(tmp_path: pathlib.Path) -> str:
    homes = tmp_path / "homes"
    return (
        _user("slow", homes / "slow", 'upload_rate = "5M"\ndownload_rate = "5M"')
        + _user("two", homes / "two", "max_sessions = 2")
        + _user("off", homes / "off", "disabled = true")
        + _user("old", homes / "old", 'expires_at = "2020-01-01"')
        + _user("future", homes / "future", 'expires_at = "2999-01-01T00:00:00Z"')
        + _user("lan", homes / "lan", 'allowed_networks = ["10.0.0.0/8"]')
        + _user("local", homes / "local", 'allowed_networks = ["127.0.0.0/8"]\ndenied_networks = ["127.0.0.2/32"]')
        + _user(
            "fastlocal",
            homes / "fastlocal",
            'download_rate = "1M"\n'
            "[[users.network_rates]]\n"
            'network = "127.0.0.0/8"\n'
            'download_rate = "5M"',
        )
    )


def _windows(marks: list[tuple[float, int]], start: float, total: int) -> list[float]:
    """Bytes per one-second window, from (time, cumulative bytes) marks."""
    rates = []
    second = 1
    index = 0
    while second <= int(marks[-1][0] - start):
        edge = start + second
        while index + 1 < len(marks) and marks[index + 1][0] <= edge:
            index += 1
        before = start + second - 1
        b0 = max((b for t, b in marks if t <= before), default=0)
        b1 = marks[index][1]
        rates.append(b1 - b0)
        second += 1
    return rates


def _check_paced(elapsed: float, marks: list[tuple[float, int]], start: float, rate: int) -> None:
    expected = SIZE / rate
    assert expected * 0.9 <= elapsed <= expected * 1.1, f"{elapsed:.2f}s for {SIZE} bytes at {rate}/s"
    for second, moved in enumerate(_windows(marks, start, SIZE), 1):
        assert moved <= rate * 1.1, f"second {second}: {moved} bytes, limit {rate}"


@pytest.fixture
def policy_server(request, tmp_path):
    request.node.add_marker(pytest.mark.server(config=_config(tmp_path)))
    return request.getfixturevalue("ftp_server")


def test_download_and_upload_keep_to_the_users_rate(policy_server) -> None:
    payload = bytes(range(256)) * (SIZE // 256)
    home = pathlib.Path(policy_server.root).parent / "homes" / "slow"
    (home / "big.bin").write_bytes(payload)
    with _login(policy_server, "slow") as ftp:
        got = bytearray()
        marks: list[tuple[float, int]] = []
        start = time.monotonic()

        def take(chunk: bytes) -> None:
            got.extend(chunk)
            marks.append((time.monotonic(), len(got)))

        ftp.retrbinary("RETR big.bin", take, blocksize=64 * 1024)
        elapsed = time.monotonic() - start
        assert bytes(got) == payload
        _check_paced(elapsed, marks, start, RATE)

        sent = 0
        up_marks: list[tuple[float, int]] = []
        up_start = time.monotonic()

        def count(block: bytes) -> None:
            nonlocal sent
            sent += len(block)
            up_marks.append((time.monotonic(), sent))

        ftp.storbinary("STOR up.bin", io.BytesIO(payload), blocksize=64 * 1024, callback=count)
        up_elapsed = time.monotonic() - up_start
        assert (home / "up.bin").read_bytes() == payload
        # The client's socket buffers hold a little ahead of the server's reading: the whole
        # upload still takes its time at the rate.
        assert SIZE / RATE * 0.9 <= up_elapsed <= SIZE / RATE * 1.1, f"{up_elapsed:.2f}s"


def test_a_network_rate_replaces_the_users_rate(policy_server) -> None:
    home = pathlib.Path(policy_server.root).parent / "homes" / "fastlocal"
    (home / "f.bin").write_bytes(b"x" * (5 * 1024 * 1024))
    with _login(policy_server, "fastlocal") as ftp:
        start = time.monotonic()
        ftp.retrbinary("RETR f.bin", lambda _: None)
        # 5 MiB at the 127.0.0.0/8 rate of 5 MiB/s, not the user's 1 MiB/s.
        assert 0.8 <= time.monotonic() - start <= 1.6


def test_sessions_per_user_are_limited(policy_server) -> None:
    first = _login(policy_server, "two")
    second = _login(policy_server, "two")
    with pytest.raises(ftplib.error_perm, match="^530"):
        _login(policy_server, "two")
    second.quit()
    third = _login(policy_server, "two")
    first.quit()
    third.quit()


@pytest.mark.parametrize("user", ["off", "old", "lan"])
def test_refused_accounts_get_530(policy_server, user: str) -> None:
    with pytest.raises(ftplib.error_perm, match="^530"):
        _login(policy_server, user)
    assert "login refused" in policy_server.log()


def test_expiry_in_the_future_and_allowed_network_log_in(policy_server) -> None:
    _login(policy_server, "future").quit()
    _login(policy_server, "local").quit()


def test_a_denied_address_inside_an_allowed_network_is_refused(policy_server) -> None:
    ftp = ftplib.FTP()
    ftp.connect(policy_server.host, policy_server.port, timeout=10, source_address=("127.0.0.2", 0))
    with pytest.raises(ftplib.error_perm, match="^530"):
        ftp.login("local", PASSWORD)
    ftp.close()
