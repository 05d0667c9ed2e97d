"""End-to-end tests driving the server with rclone's FTP backend."""

from __future__ import annotations

import json
import pathlib

import pytest

from e2e_support import (
    assert_same_tree,
    make_tree,
    require_tool,
    run,
    sha256_file,
    tree_digest,
    tree_dirs,
)

# Names rclone stores unchanged with its default FTP encoding.
RCLONE_NAMES = ["with space.txt", "hash#sign.bin", "per%cent.dat", "single'quote.txt",
                "-leading-dash.txt", "ünïcødé-файл-文件.txt"]


def reference_server_dirs(server, *dirs: str, like: pathlib.Path | None = None) -> None:
    """Create ``dirs`` beforehand on the pyftpdlib reference server only.

    With ``like``, every directory under that local tree is created below each
    of ``dirs`` as well.

    rclone treats a 550 reply to MLSD of a missing directory as "not found" and
    goes on to create it; pyftpdlib answers 501 instead, which rclone takes as a
    hard error. ftpgate answers 550, so against it rclone creates them itself.
    """
    if server.is_ftpgate:
        return
    for d in dirs:
        (server.root / d).mkdir(parents=True, exist_ok=True)
        for sub in tree_dirs(like) if like else ():
            (server.root / d / sub).mkdir(parents=True, exist_ok=True)


class Rclone:
    def __init__(self, server, tmp_path: pathlib.Path, **options: str):
        require_tool("rclone")
        self.config = tmp_path / "rclone.conf"
        self.config.write_text("")
        self.cache = tmp_path / "rclone-cache"
        obscured = self.run("obscure", server.password).stdout.decode().strip()
        assert obscured and obscured != server.password
        params = {
            "host": server.host,
            "port": str(server.port),
            "user": server.user,
            "pass": obscured,
            **options,
        }
        self.remote = ":ftp," + ",".join(f"{k}={v}" for k, v in params.items()) + ":"

    def path(self, rel: str = "") -> str:
        return self.remote + rel

    def run(self, *args: str, check: bool = True, timeout: float = 120):
        return run(
            [
                "rclone",
                "--config", str(self.config),
                "--cache-dir", str(self.cache),
                "--low-level-retries", "1",
                "--retries", "1",
                "--contimeout", "10s",
                "--timeout", "30s",
                *args,
            ],
            timeout=timeout,
            check=check,
        )


@pytest.mark.parametrize("disable_epsv", [False, True], ids=["epsv", "pasv"])
def test_copy_check_and_back(ftp_server, tmp_path, disable_epsv):
    options = {"disable_epsv": "true"} if disable_epsv else {}
    rc = Rclone(ftp_server, tmp_path, **options)
    src = tmp_path / "src"
    back = tmp_path / "back"
    expected = make_tree(src, files=50, max_size=256 * 1024, seed=31, extra_names=RCLONE_NAMES)
    reference_server_dirs(ftp_server, "dest", like=src)

    rc.run("copy", str(src), rc.path("dest"), "--transfers", "4")
    assert_same_tree(expected, tree_digest(ftp_server.root / "dest"), "server root after rclone copy")

    # rclone compares sizes (FTP has no hashes); --download compares content.
    rc.run("check", str(src), rc.path("dest"))
    rc.run("check", "--download", str(src), rc.path("dest"))

    rc.run("copy", rc.path("dest"), str(back), "--transfers", "4")
    assert_same_tree(expected, tree_digest(back), "tree copied back")
    assert tree_dirs(back) == tree_dirs(src)


def test_check_detects_difference(ftp_server, tmp_path):
    rc = Rclone(ftp_server, tmp_path)
    src = tmp_path / "src"
    expected = make_tree(src, files=10, max_size=4096, seed=32)
    reference_server_dirs(ftp_server, "dest", like=src)
    rc.run("copy", str(src), rc.path("dest"))
    victim = sorted(expected)[3]
    (ftp_server.root / "dest" / victim).write_bytes(b"tampered on the server")
    proc = rc.run("check", str(src), rc.path("dest"), check=False)
    assert proc.returncode != 0
    assert victim in proc.stderr.decode("utf-8", errors="replace")


def test_lsjson_matches_server_root(ftp_server, tmp_path):
    rc = Rclone(ftp_server, tmp_path)
    expected = make_tree(ftp_server.root / "tree", files=15, max_size=10_000, seed=33,
                         extra_names=RCLONE_NAMES)
    proc = rc.run("lsjson", "-R", rc.path("tree"))
    items = json.loads(proc.stdout)
    files = {it["Path"]: it["Size"] for it in items if not it["IsDir"]}
    dirs = {it["Path"] for it in items if it["IsDir"]}
    assert files == {rel: (ftp_server.root / "tree" / rel).stat().st_size for rel in expected}
    assert dirs == tree_dirs(ftp_server.root / "tree")


def test_mkdir_move_delete_purge(ftp_server, tmp_path):
    rc = Rclone(ftp_server, tmp_path)
    root = ftp_server.root
    local = tmp_path / "one.bin"
    local.write_bytes(b"x" * 5000)

    reference_server_dirs(ftp_server, "made")
    rc.run("mkdir", rc.path("made/deeper"))
    assert (root / "made" / "deeper").is_dir()

    rc.run("copyto", str(local), rc.path("made/one.bin"))
    assert sha256_file(root / "made" / "one.bin") == sha256_file(local)

    rc.run("moveto", rc.path("made/one.bin"), rc.path("made/deeper/renamed one.bin"))
    assert not (root / "made" / "one.bin").exists()
    assert (root / "made" / "deeper" / "renamed one.bin").read_bytes() == b"x" * 5000

    rc.run("deletefile", rc.path("made/deeper/renamed one.bin"))
    assert not (root / "made" / "deeper" / "renamed one.bin").exists()

    rc.run("rmdir", rc.path("made/deeper"))
    assert not (root / "made" / "deeper").exists()

    make_tree(root / "made" / "full", files=12, max_size=1000, seed=34)
    rc.run("purge", rc.path("made"))
    assert not (root / "made").exists()
    assert list(root.iterdir()) == []
