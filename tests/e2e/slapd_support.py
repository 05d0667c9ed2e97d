"""A real OpenLDAP server for the end-to-end tests: Debian's slapd on a free loopback port.

The configuration and the base entries are the ones the Rust tests use
(crates/ftpgate-test-support/slapd/: one mdb database for dc=example,dc=org in a temporary
directory; ou=people, ou=groups and the service account cn=ftp-service,dc=example,dc=org with
password "service-pw"). It is not the system's slapd service: no debconf, nothing outside its
directory. Entries are added with ldapadd.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import time

from conftest import REPO_ROOT
from e2e_support import require_tool

SUPPORT = REPO_ROOT / "crates" / "ftpgate-test-support" / "slapd"
BASE_DN = "dc=example,dc=org"
PEOPLE_DN = "ou=people,dc=example,dc=org"
GROUPS_DN = "ou=groups,dc=example,dc=org"
SERVICE_DN = "cn=ftp-service,dc=example,dc=org"
SERVICE_PASSWORD = "service-pw"
ADMIN_DN = "cn=admin,dc=example,dc=org"


def _slapd_binary() -> str:
    explicit = os.environ.get("FTPGATE_SLAPD_BIN")
    if explicit:
        return explicit
    if pathlib.Path("/usr/sbin/slapd").is_file():
        return "/usr/sbin/slapd"
    return require_tool("slapd")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Slapd:
    """slapd in ``directory``; ``start`` / ``stop`` keep its data and its port."""

    def __init__(self, directory: pathlib.Path):
        require_tool("ldapadd")
        self.binary = _slapd_binary()
        self.dir = directory
        (directory / "data").mkdir(parents=True)
        self.admin_password = secrets.token_hex(8)
        template = (SUPPORT / "slapd.conf.in").read_text(encoding="utf-8")
        config = (
            template.replace("@DIR@", str(directory))
            .replace("@ADMIN_PASSWORD@", self.admin_password)
            .replace("@TLS@", "")
        )
        (directory / "slapd.conf").write_text(config, encoding="utf-8")
        self.port = _free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = (self.dir / "slapd.log").open("ab")
        # -d keeps it in the foreground (our child); 256: connections and operations.
        self.proc = subprocess.Popen(
            [self.binary, "-f", str(self.dir / "slapd.conf"), "-h", self.url + "/", "-d", "256"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "slapd exited: " + (self.dir / "slapd.log").read_text(errors="replace")[-3000:]
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("slapd did not listen within 30 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def add(self, ldif: str) -> None:
        path = self.dir / "add.ldif"
        path.write_text(ldif, encoding="utf-8")
        subprocess.run(
            ["ldapadd", "-x", "-H", self.url, "-D", ADMIN_DN, "-w", self.admin_password,
             "-f", str(path)],
            check=True, capture_output=True, timeout=30,
        )


def user_ldif(uid: str, password: str) -> str:
    dn_value = "".join("\\" + c if c in '\\,+"<>;=' else c for c in uid)
    return (
        f"dn: uid={dn_value},{PEOPLE_DN}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n"
        f"uid: {uid}\ncn: {uid}\nsn: {uid}\nuidNumber: 10000\ngidNumber: 10000\n"
        f"homeDirectory: /nonexistent\nuserPassword: {password}\n\n"
    )


def group_ldif(cn: str, uids: list[str]) -> str:
    members = "".join(f"member: uid={uid},{PEOPLE_DN}\n" for uid in uids)
    return f"dn: cn={cn},{GROUPS_DN}\nobjectClass: groupOfNames\ncn: {cn}\n{members}\n"


def start(directory: pathlib.Path) -> Slapd:
    """A running slapd with the base entries."""
    if shutil.which("ldapadd") is None:
        require_tool("ldapadd")
    server = Slapd(directory)
    server.start()
    server.add((SUPPORT / "base.ldif").read_text(encoding="utf-8"))
    return server
