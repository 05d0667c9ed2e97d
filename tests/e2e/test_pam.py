"""End-to-end: logins checked against the machine's accounts through PAM (`[[auth]] type = "pam"`).

The test makes a system user (useradd, chpasswd) and a PAM service file of its own
(/etc/pam.d/ftpgate-test-*, pam_unix for auth and account), removed afterwards; curl and lftp
log in as that user and transfer files to the account's home. Needs root (CI runs as root):
skipped otherwise.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import uuid

import pytest

from conftest import serving_config
from e2e_support import curl, require_tool, run

PASSWORD = "Pam-e2e-pw-1"


@pytest.fixture
def account():
    """A system user with PASSWORD and a PAM service file; (name, home, service)."""
    if os.geteuid() != 0:
        pytest.skip("PAM tests need root (useradd, /etc/pam.d, /etc/shadow)")
    for tool in ("useradd", "userdel", "chpasswd", "usermod"):
        require_tool(tool)
    tag = uuid.uuid4().hex[:8]
    name, service = f"ftpe{tag}", f"ftpgate-test-{tag}"
    run(["useradd", "-m", "-s", "/usr/sbin/nologin", name])
    pam_file = pathlib.Path("/etc/pam.d") / service
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{PASSWORD}".encode(), check=True)
        pam_file.write_text("auth required pam_unix.so\naccount required pam_unix.so\n")
        yield name, pathlib.Path(f"/home/{name}"), service
    finally:
        pam_file.unlink(missing_ok=True)
        subprocess.run(["userdel", "-r", name], capture_output=True)


@pytest.fixture
def gate(tmp_path, account):
    name, home, service = account
    with serving_config(tmp_path, f"""
[[auth]]
type = "pam"
service = "{service}"
""") as (port, _):
        yield port, name, home


def test_curl_logs_in_with_the_account_password_and_transfers(gate, tmp_path):
    port, name, home = gate
    upload = tmp_path / "up.bin"
    upload.write_bytes(os.urandom(300_000))
    done = curl("--user", f"{name}:{PASSWORD}", "-T", str(upload), f"ftp://127.0.0.1:{port}/up.bin")
    assert done.returncode == 0, done.stderr
    assert (home / "up.bin").read_bytes() == upload.read_bytes()
    got = curl("--user", f"{name}:{PASSWORD}", f"ftp://127.0.0.1:{port}/up.bin")
    assert got.returncode == 0 and got.stdout == upload.read_bytes()
    # A wrong password: login denied (curl's code 67).
    wrong = curl("--user", f"{name}:not-it", f"ftp://127.0.0.1:{port}/")
    assert wrong.returncode == 67, (wrong.returncode, wrong.stderr)
    # Locked: the right password is refused too.
    run(["usermod", "-L", name])
    locked = curl("--user", f"{name}:{PASSWORD}", f"ftp://127.0.0.1:{port}/")
    assert locked.returncode == 67, (locked.returncode, locked.stderr)


def test_lftp_lists_gets_and_puts_as_the_account(gate, tmp_path):
    require_tool("lftp")
    port, name, home = gate
    (home / "readme.txt").write_text("in the account's home\n")
    (tmp_path / "new.txt").write_text("from lftp\n")
    proc = run(
        ["lftp", "-u", f"{name},{PASSWORD}", "-p", str(port), "127.0.0.1", "-e",
         f"set net:max-retries 1; cls -1; get readme.txt -o {tmp_path / 'got.txt'}; "
         f"put {tmp_path / 'new.txt'}; bye"],
        check=False, cwd=tmp_path,
    )
    out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, (out, err)
    assert "readme.txt" in out, (out, err)
    assert (tmp_path / "got.txt").read_text() == "in the account's home\n"
    assert (home / "new.txt").read_text() == "from lftp\n"

