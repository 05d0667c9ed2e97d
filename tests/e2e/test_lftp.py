"""End-to-end tests: lftp mirrors whole trees to the server and back."""

from __future__ import annotations

import os
import pathlib

import pytest

from e2e_support import (
    AWKWARD_NAMES,
    assert_same_tree,
    make_tree,
    require_tool,
    run,
    tree_digest,
    tree_dirs,
)

EMPTY_DIRS = ["empty-dir", "alpha/empty dir ü"]


def lftp(server, tmp_path: pathlib.Path, script: list[str], *, passive: bool, epsv: bool = False,
         timeout: float = 120):
    require_tool("lftp")
    home = tmp_path / "lftp-home"
    home.mkdir(exist_ok=True)
    settings = [
        "set cmd:fail-exit yes",
        "set cmd:interactive no",
        f"set ftp:passive-mode {'on' if passive else 'off'}",
        f"set ftp:prefer-epsv {'yes' if epsv else 'no'}",
        "set ftp:ssl-allow no",
        "set net:max-retries 1",
        "set net:timeout 10",
        "set net:reconnect-interval-base 1",
        "set xfer:log no",
    ]
    commands = "; ".join(settings + script + ["quit"])
    return run(
        ["lftp", "-u", f"{server.user},{server.password}", "-p", str(server.port), server.host,
         "-e", commands],
        timeout=timeout,
        # A UTF-8 locale so that lftp does not transliterate non-ASCII names,
        # and a private HOME so no user rc file or bookmark gets in the way.
        env={"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "HOME": str(home),
             "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local")},
    )


def q(path: pathlib.Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_mirror_large_tree_round_trip(ftp_server, tmp_path):
    local = tmp_path / "local"
    back = tmp_path / "back"
    expected = make_tree(local, files=300, max_size=200 * 1024, seed=21,
                         extra_names=AWKWARD_NAMES, empty_dirs=EMPTY_DIRS)
    assert len(expected) == 300
    # Distinct whole-second times in the past, so that preserving them is
    # observable.
    for i, rel in enumerate(sorted(expected)):
        stamp = 1_500_000_000 + i * 3607
        os.utime(local / rel, (stamp, stamp))

    lftp(ftp_server, tmp_path, [
        f"mirror -R --parallel=4 {q(local)} remote",
        f"mirror --parallel=4 remote {q(back)}",
    ], passive=True)

    remote = ftp_server.root / "remote"
    assert_same_tree(expected, tree_digest(local), "local tree (sanity)")
    assert_same_tree(expected, tree_digest(remote), "server root after mirror -R")
    assert_same_tree(expected, tree_digest(back), "tree mirrored back")
    assert tree_dirs(remote) == tree_dirs(local)
    assert tree_dirs(back) == tree_dirs(local)

    # lftp sets the modification time of uploads (MFMT) and of downloads
    # (from the MLSD/MDTM times), so all three copies agree to the second.
    for rel in expected:
        t_local = (local / rel).stat().st_mtime
        t_remote = (remote / rel).stat().st_mtime
        t_back = (back / rel).stat().st_mtime
        assert abs(t_local - t_remote) < 1.0, (rel, t_local, t_remote)
        assert abs(t_local - t_back) < 1.0, (rel, t_local, t_back)


@pytest.mark.parametrize("mode", ["active", "epsv"])
def test_mirror_small_tree(ftp_server, tmp_path, mode):
    local = tmp_path / "local"
    back = tmp_path / "back"
    expected = make_tree(local, files=25, max_size=64 * 1024, seed=22,
                         extra_names=AWKWARD_NAMES[:3] + AWKWARD_NAMES[6:], empty_dirs=EMPTY_DIRS[:1])

    # lftp's own scheduling can stall parallel transfers in active mode for a
    # whole net:timeout, so active mode runs one transfer at a time.
    parallel = 1 if mode == "active" else 2
    proc = lftp(ftp_server, tmp_path, [
        "debug -o /dev/stderr 9",
        f"mirror -R --parallel={parallel} {q(local)} up",
        f"mirror --parallel={parallel} up {q(back)}",
    ], passive=(mode != "active"), epsv=(mode == "epsv"))

    trace = proc.stderr.decode("utf-8", errors="replace")
    if mode == "active":
        assert "---> EPRT" in trace or "---> PORT" in trace, trace[-3000:]
        assert "---> PASV" not in trace and "---> EPSV" not in trace
    else:
        assert "---> EPSV" in trace, trace[-3000:]
        assert "<--- 229" in trace
    assert_same_tree(expected, tree_digest(ftp_server.root / "up"), "server root after mirror -R")
    assert_same_tree(expected, tree_digest(back), "tree mirrored back")
    assert "empty-dir" in tree_dirs(ftp_server.root / "up")


def test_mirror_delete_syncs_removals(ftp_server, tmp_path):
    local = tmp_path / "local"
    expected = make_tree(local, files=20, max_size=8 * 1024, seed=23)
    lftp(ftp_server, tmp_path, [f"mirror -R {q(local)} sync"], passive=True)
    assert_same_tree(expected, tree_digest(ftp_server.root / "sync"), "first upload")

    # Remove a few local files and a directory, change one file, mirror again
    # with --delete: the server copy follows.
    removed = sorted(expected)[:5]
    for rel in removed:
        (local / rel).unlink()
        del expected[rel]
    changed = sorted(expected)[-1]
    (local / changed).write_bytes(b"changed content, different size")
    lftp(ftp_server, tmp_path, [f"mirror -R --delete {q(local)} sync"], passive=True)
    assert_same_tree(tree_digest(local), tree_digest(ftp_server.root / "sync"), "after mirror --delete")
