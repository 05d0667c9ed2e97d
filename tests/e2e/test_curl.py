"""End-to-end tests driving the server with the curl command-line client."""

from __future__ import annotations

import pathlib
import urllib.parse
import zlib

import pytest

from e2e_support import (
    AWKWARD_NAMES,
    random_bytes,
    require_tool,
    run,
    sha256_bytes,
    sha256_file,
    write_random,
)

MiB = 1024 * 1024

# name -> (extra curl options, command that must be sent, reply it must get)
MODES = {
    "epsv": ([], "> EPSV", "< 229"),
    "pasv": (["--disable-epsv"], "> PASV", "< 227"),
    "eprt": (["--ftp-port", "127.0.0.1"], "> EPRT |1|127.0.0.1|", "< 200"),
    "port": (["--ftp-port", "127.0.0.1", "--disable-eprt"], "> PORT 127,0,0,1,", "< 200"),
}


def enc(path: str) -> str:
    """URL-encode each component of a '/'-separated path."""
    return "/".join(urllib.parse.quote(part, safe="") for part in path.split("/"))


def curl(server, *args: str, mode: str = "epsv", timeout: float = 60, check: bool = True):
    require_tool("curl")
    opts, _, _ = MODES[mode]
    cmd = [
        "curl",
        "--silent",
        "--show-error",
        "--verbose",
        "--globoff",
        "--noproxy", "*",
        "--connect-timeout", "10",
        "--max-time", str(int(timeout) - 5),
        "--user", f"{server.user}:{server.password}",
        *opts,
        *args,
    ]
    return run(cmd, timeout=timeout, check=check)


def assert_mode_used(proc, mode: str) -> None:
    """The verbose trace shows the data connection set up the way ``mode`` says."""
    _, sent, reply = MODES[mode]
    err = proc.stderr.decode("utf-8", errors="replace")
    assert sent in err, f"curl did not send {sent[2:]!r}:\n{err[-4000:]}"
    after = err[err.index(sent):]
    assert reply in after, f"{sent[2:]!r} did not get {reply[2:]!r}:\n{err[-4000:]}"


@pytest.mark.parametrize("mode", list(MODES))
def test_upload_download_roundtrip(ftp_server, tmp_path, mode):
    local = tmp_path / "upload.bin"
    data = write_random(local, 3 * MiB + 12345, seed=1)

    up = curl(ftp_server, "-T", str(local), ftp_server.url("stored.bin"), mode=mode)
    assert_mode_used(up, mode)
    on_server = ftp_server.root / "stored.bin"
    assert on_server.is_file()
    assert on_server.stat().st_size == len(data)
    assert sha256_file(on_server) == sha256_bytes(data)

    out = tmp_path / "download.bin"
    down = curl(ftp_server, "-o", str(out), ftp_server.url("stored.bin"), mode=mode)
    assert_mode_used(down, mode)
    assert sha256_file(out) == sha256_bytes(data)


def test_zero_byte_file(ftp_server, tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    curl(ftp_server, "-T", str(empty), ftp_server.url("zero.bin"))
    on_server = ftp_server.root / "zero.bin"
    assert on_server.is_file()
    assert on_server.stat().st_size == 0

    # Download to stdout: an empty body and success.
    proc = curl(ftp_server, ftp_server.url("zero.bin"))
    assert proc.stdout == b""


def test_upload_replaces_existing_file(ftp_server, tmp_path):
    write_random(ftp_server.root / "replace.bin", 2 * MiB, seed=2)
    local = tmp_path / "small.bin"
    data = write_random(local, 1000, seed=3)
    curl(ftp_server, "-T", str(local), ftp_server.url("replace.bin"))
    # STOR truncates: nothing of the old, longer content may remain.
    assert (ftp_server.root / "replace.bin").read_bytes() == data


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_awkward_names(ftp_server, tmp_path, name):
    local = tmp_path / "payload"
    data = write_random(local, 50_000, seed=zlib.crc32(name.encode()))
    curl(ftp_server, "-T", str(local), ftp_server.url(enc(name)))
    on_server = ftp_server.root / name
    assert on_server.is_file(), f"server root holds {sorted(p.name for p in ftp_server.root.iterdir())}"
    assert on_server.read_bytes() == data

    out = tmp_path / "back"
    curl(ftp_server, "-o", str(out), ftp_server.url(enc(name)))
    assert out.read_bytes() == data

    listing = curl(ftp_server, "--list-only", ftp_server.url("")).stdout.decode("utf-8")
    assert name in listing.splitlines()


def test_resume_upload(ftp_server, tmp_path):
    local = tmp_path / "full.bin"
    data = write_random(local, 4 * MiB + 777, seed=4)
    partial = 1 * MiB + 333
    (ftp_server.root / "resume-up.bin").write_bytes(data[:partial])

    proc = curl(ftp_server, "-C", "-", "-T", str(local), ftp_server.url("resume-up.bin"))
    err = proc.stderr.decode("utf-8", errors="replace")
    # curl asks for the size and appends the rest.
    assert "> SIZE resume-up.bin" in err
    assert f"< 213 {partial}" in err
    assert "> APPE resume-up.bin" in err
    assert sha256_file(ftp_server.root / "resume-up.bin") == sha256_bytes(data)


def test_resume_download(ftp_server, tmp_path):
    data = write_random(ftp_server.root / "resume-down.bin", 4 * MiB + 99, seed=5)
    partial = 2 * MiB + 1
    out = tmp_path / "partial.bin"
    out.write_bytes(data[:partial])

    proc = curl(ftp_server, "-C", "-", "-o", str(out), ftp_server.url("resume-down.bin"))
    err = proc.stderr.decode("utf-8", errors="replace")
    assert f"> REST {partial}" in err
    assert "< 350" in err
    assert sha256_file(out) == sha256_bytes(data)


def test_create_dirs_on_upload(ftp_server, tmp_path):
    local = tmp_path / "nested.bin"
    data = write_random(local, 123_456, seed=6)
    target = "new/deeper dir/ü-level/file.bin"
    curl(ftp_server, "--ftp-create-dirs", "-T", str(local), ftp_server.url(enc(target)))
    assert (ftp_server.root / "new" / "deeper dir" / "ü-level").is_dir()
    assert (ftp_server.root / target).read_bytes() == data


def test_upload_into_missing_dir_fails_without_create_dirs(ftp_server, tmp_path):
    local = tmp_path / "x.bin"
    write_random(local, 100, seed=7)
    proc = curl(ftp_server, "-T", str(local), ftp_server.url("missing/x.bin"), check=False)
    assert proc.returncode != 0
    assert not (ftp_server.root / "missing").exists()


@pytest.mark.parametrize("method", ["multicwd", "singlecwd", "nocwd"])
def test_nested_download_with_cwd_methods(ftp_server, tmp_path, method):
    data = write_random(ftp_server.root / "a" / "b c" / "d" / "deep.bin", 200_000, seed=8)
    out = tmp_path / "deep.bin"
    curl(ftp_server, "--ftp-method", method, "-o", str(out), ftp_server.url(enc("a/b c/d/deep.bin")))
    assert out.read_bytes() == data


def test_download_missing_file(ftp_server, tmp_path):
    proc = curl(ftp_server, "-o", str(tmp_path / "nope"), ftp_server.url("does-not-exist.bin"), check=False)
    # 78 = CURLE_REMOTE_FILE_NOT_FOUND: the server answered RETR with 550.
    assert proc.returncode == 78, proc.stderr.decode("utf-8", errors="replace")[-3000:]


def test_quote_commands(ftp_server):
    root = ftp_server.root
    (root / "old name.txt").write_bytes(b"renamed content\n")
    (root / "gone.txt").write_bytes(b"to be deleted\n")
    (root / "emptydir").mkdir()

    proc = curl(
        ftp_server,
        "--list-only",
        "-Q", "MKD made",
        "-Q", "MKD dir with space",
        "-Q", "RNFR old name.txt",
        "-Q", "RNTO new name.txt",
        "-Q", "RMD emptydir",
        "-Q", "-DELE gone.txt",  # runs after the listing
        ftp_server.url(""),
    )
    # Pre-transfer commands ran before the listing, the post one after it.
    listed = set(proc.stdout.decode("utf-8").splitlines())
    assert {"made", "dir with space", "new name.txt", "gone.txt"} <= listed
    assert "old name.txt" not in listed
    assert "emptydir" not in listed

    assert (root / "made").is_dir()
    assert (root / "dir with space").is_dir()
    assert not (root / "old name.txt").exists()
    assert (root / "new name.txt").read_bytes() == b"renamed content\n"
    assert not (root / "emptydir").exists()
    assert not (root / "gone.txt").exists()


def test_failing_quote_command(ftp_server):
    (ftp_server.root / "keep.txt").write_bytes(b"keep")
    proc = curl(ftp_server, "--list-only", "-Q", "DELE no-such-file.txt", ftp_server.url(""), check=False)
    # 21 = CURLE_QUOTE_ERROR: the server rejected the command.
    assert proc.returncode == 21
    assert (ftp_server.root / "keep.txt").read_bytes() == b"keep"


def _populate_listing_dir(root: pathlib.Path) -> dict[str, int]:
    d = root / "listdir"
    d.mkdir()
    sizes = {
        "plain.txt": 5,
        "with space.bin": 12345,
        "ünïcødé.dat": 777,
        "-dash": 1,
        "empty": 0,
    }
    for name, size in sizes.items():
        (d / name).write_bytes(random_bytes(size, seed=size))
    (d / "subdir").mkdir()
    (d / "subdir" / "hidden-inside.txt").write_bytes(b"x")
    return sizes


@pytest.mark.parametrize("mode", list(MODES))
def test_listing(ftp_server, mode):
    sizes = _populate_listing_dir(ftp_server.root)
    expected_names = set(sizes) | {"subdir"}

    # LIST: one "ls -l" style line per entry, the name last.
    proc = curl(ftp_server, ftp_server.url("listdir/"), mode=mode)
    assert_mode_used(proc, mode)
    lines = [ln for ln in proc.stdout.decode("utf-8").splitlines() if ln.strip()]
    by_name = {}
    for name in expected_names:
        matching = [ln for ln in lines if ln.endswith(" " + name)]
        assert len(matching) == 1, f"{name!r} not listed exactly once in:\n" + "\n".join(lines)
        by_name[name] = matching[0]
    assert by_name["subdir"].startswith("d"), by_name["subdir"]
    for name, size in sizes.items():
        line = by_name[name]
        assert line.startswith("-"), line
        assert f" {size} " in line, f"size {size} missing from {line!r}"
    assert not any("hidden-inside" in ln for ln in lines)
    names_listed = {ln.rsplit(" ", 1)[-1] for ln in lines}
    assert not names_listed & {".", ".."}

    # NLST: bare names, one per line.
    proc = curl(ftp_server, "--list-only", ftp_server.url("listdir/"), mode=mode)
    assert_mode_used(proc, mode)
    assert set(proc.stdout.decode("utf-8").splitlines()) == expected_names
