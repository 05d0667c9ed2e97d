"""End-to-end: logins checked against an LDAP directory (`[[auth]] type = "ldap"`).

A real slapd (slapd_support.py, the configuration the Rust tests use) on a free loopback port,
seeded with ldapadd: "ann" in the group ftp-rw, "viewer" in ftp-ro. ftpgate searches as the
service account, binds as the entry found, and maps the groups to permissions; a `[[users]]`
entry sits after it in the chain. curl and lftp log in through it; ftplib checks the exact
replies while slapd is stopped (421, never a ban, however many attempts) and started again.
"""

from __future__ import annotations

import ftplib

import pytest

import slapd_support
from conftest import (
    hash_password,
    serving_config,
)
from e2e_support import check_curl_login_chain, check_lftp_read_only, require_tool, run


@pytest.fixture
def gate(tmp_path):
    """ftpgate with [[auth]] ldap (a fresh slapd) then file (user "local")."""
    ldap = slapd_support.start(tmp_path / "slapd")
    ldap.add(
        slapd_support.user_ldif("ann", "ann-secret")
        + slapd_support.user_ldif("viewer", "viewer-secret")
        + slapd_support.user_ldif("late", "late-secret")
        + slapd_support.user_ldif("we*rd)(name\\", "weird-secret")
        + slapd_support.group_ldif("ftp-rw", ["ann"])
        + slapd_support.group_ldif("ftp-ro", ["viewer"])
    )
    root = tmp_path / "homes"
    for name in ("ann", "viewer", "late", "local", "we*rd)(name\\"):
        (root / name).mkdir(parents=True)
    (root / "viewer" / "readme.txt").write_bytes(b"read me\n")
    try:
        with serving_config(tmp_path, f"""ban_after_failures = 3
login_failure_delay_ms = 100

[[auth]]
type = "ldap"
url = "{ldap.url}"
bind_dn = "{slapd_support.SERVICE_DN}"
bind_password = "{slapd_support.SERVICE_PASSWORD}"
base_dn = "{slapd_support.BASE_DN}"
home_template = "{root}/{{user}}"
permissions = "el"
group_permissions = {{ "cn=ftp-ro,ou=groups,dc=example,dc=org" = "elr", "cn=ftp-rw,ou=groups,dc=example,dc=org" = "elradfmw" }}
timeout_secs = 2
connect_timeout_secs = 2

[[auth]]
type = "file"

[[users]]
name = "local"
password_hash = "{hash_password('local-pw')}"
home = "{root / 'local'}"
""") as (port, _):
            yield port, root, ldap
    finally:
        ldap.stop()


def test_curl_logs_in_through_ldap_and_transfers(gate, tmp_path):
    port, root, _ = gate
    check_curl_login_chain(port, root, tmp_path)


def test_lftp_gets_the_read_only_groups_permissions(gate, tmp_path):
    port, root, _ = gate
    check_lftp_read_only(port, root, tmp_path, "viewer", "viewer-secret")


def test_names_with_filter_metacharacters(gate):
    port, _, _ = gate
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=10)
    assert ftp.login("we*rd)(name\\", "weird-secret").startswith("230")
    ftp.quit()
    # A wildcard matches nobody, and is an ordinary failed login (not an error).
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=10)
    with pytest.raises(ftplib.error_perm, match="^530"):
        ftp.login("*", "ann-secret")
    ftp.close()


def test_a_stopped_directory_gets_421_and_never_a_ban(gate):
    port, _, ldap = gate
    ldap.stop()
    # Twice the ban threshold (3): every attempt is told to come back later.
    for _ in range(6):
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", port, timeout=10)
        with pytest.raises(ftplib.error_temp, match="^421"):
            ftp.login("late", "late-secret")
        ftp.close()
    # So is a [[users]] user: the chain stops at LDAP (no fallthrough configured).
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=10)
    with pytest.raises(ftplib.error_temp, match="^421"):
        ftp.login("local", "local-pw")
    ftp.close()
    # slapd is back: logins work from the same address at once, and lftp can too.
    ldap.start()
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=10)
    assert ftp.login("late", "late-secret").startswith("230")
    ftp.quit()
    require_tool("lftp")
    proc = run(
        ["lftp", "-u", "viewer,viewer-secret", "-p", str(port), "127.0.0.1", "-e",
         "set net:max-retries 1; cls -1; bye"],
        check=False,
    )
    assert "readme.txt" in proc.stdout.decode(errors="replace"), proc.stderr
