"""Helpers shared by the end-to-end tests (standard library + pytest only)."""

from __future__ import annotations

import hashlib
import os
import pathlib
import random
import shutil
import subprocess
from typing import Iterable, Mapping, Optional, Sequence

import pytest

# Names that exercise quoting and encoding in every client. None has a
# trailing space or dot, which some clients rewrite on their own.
AWKWARD_NAMES = [
    "with space.txt",
    "hash#sign.bin",
    "per%cent.dat",
    "single'quote.txt",
    'double"quote.txt',
    "-leading-dash.txt",
    "ünïcødé-файл-文件.txt",
    "mixed ü #%' name.bin",
]


def require_tool(name: str) -> str:
    """Path of client program ``name``; skip (or fail, when required) if absent."""
    path = shutil.which(name)
    if path:
        return path
    required = os.environ.get("FTPGATE_E2E_REQUIRE_TOOLS", "") not in ("", "0") or bool(
        os.environ.get("CI")
    )
    msg = f"client program {name!r} is not installed (scripts/test.sh installs it)"
    if required:
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def run(
    cmd: Sequence[str],
    *,
    timeout: float = 60,
    check: bool = True,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[os.PathLike] = None,
) -> subprocess.CompletedProcess:
    """Run ``cmd`` with a timeout, capturing output; on failure, show it."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
            env=full_env,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"command timed out after {timeout}s: {cmd!r}\n"
            f"--- stdout ---\n{_text(exc.stdout)}\n--- stderr ---\n{_text(exc.stderr)}"
        ) from None
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed with exit status {proc.returncode}: {cmd!r}\n"
            f"--- stdout ---\n{_text(proc.stdout)}\n--- stderr ---\n{_text(proc.stderr)}"
        )
    return proc


def _text(data) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    return data[-8000:]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def write_random(path: pathlib.Path, size: int, seed: int) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = random_bytes(size, seed)
    path.write_bytes(data)
    return data


def make_tree(
    base: pathlib.Path,
    *,
    files: int,
    max_size: int,
    seed: int,
    extra_names: Iterable[str] = (),
    empty_dirs: Iterable[str] = (),
) -> dict[str, str]:
    """Create ``files`` files of random size 0..max_size under nested dirs.

    Returns {posix relative path: sha256}. ``extra_names`` are used as file
    and directory names for some entries; ``empty_dirs`` are created empty.
    """
    rng = random.Random(seed)
    extra = list(extra_names)
    dirs = [
        "",
        "alpha",
        "alpha/beta",
        "alpha/beta/gamma",
        "delta",
        "delta/epsilon",
        "zeta/eta/theta/iota",
        "dir with spaces",
        "dir with spaces/inner ümlaut",
        "ünïcødé-каталог",
    ]
    result: dict[str, str] = {}
    for i in range(files):
        d = dirs[i % len(dirs)]
        if extra and i % 7 == 3:
            name = f"{i:04d} {extra[(i // 7) % len(extra)]}"
        else:
            name = f"file-{i:04d}.bin"
        rel = f"{d}/{name}" if d else name
        # A few fixed sizes at the edges, the rest random.
        if i % 50 == 0:
            size = 0
        elif i % 50 == 1:
            size = 1
        else:
            size = rng.randint(0, max_size)
        data = rng.randbytes(size)
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        result[rel] = sha256_bytes(data)
    for d in empty_dirs:
        (base / d).mkdir(parents=True, exist_ok=True)
    return result


def tree_digest(base: pathlib.Path) -> dict[str, str]:
    """{posix relative path: sha256} for every regular file under ``base``."""
    out: dict[str, str] = {}
    for dirpath, _dirnames, filenames in os.walk(base):
        for name in filenames:
            p = pathlib.Path(dirpath) / name
            out[p.relative_to(base).as_posix()] = sha256_file(p)
    return out


def tree_dirs(base: pathlib.Path) -> set[str]:
    """Posix relative paths of every directory under ``base``."""
    out: set[str] = set()
    for dirpath, dirnames, _filenames in os.walk(base):
        for name in dirnames:
            out.add((pathlib.Path(dirpath) / name).relative_to(base).as_posix())
    return out


def assert_same_tree(expected: Mapping[str, str], actual: Mapping[str, str], what: str) -> None:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    differ = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])
    assert not (missing or extra or differ), (
        f"{what}: {len(missing)} missing, {len(extra)} unexpected, {len(differ)} differ\n"
        f"missing: {missing[:20]}\nunexpected: {extra[:20]}\ndiffer: {differ[:20]}"
    )


def curl(*args: str, timeout: int = 30) -> subprocess.CompletedProcess:
    """curl, quiet but for errors, not failing the test by itself."""
    require_tool("curl")
    return run(["curl", "-sS", "--max-time", str(timeout), *args], check=False)


def check_curl_login_chain(port: int, root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """Through a login source that knows ann (password ann-secret), then ``[[users]]`` "local"
    (local-pw): ann uploads and downloads, a wrong password is curl's "login denied" (67), and
    a name the source does not know goes on to ``[[users]]``."""
    upload = tmp_path / "up.bin"
    upload.write_bytes(b"through the login source\n" * 1000)
    done = curl("--user", "ann:ann-secret", "-T", str(upload), f"ftp://127.0.0.1:{port}/up.bin")
    assert done.returncode == 0, done.stderr
    assert (root / "ann" / "up.bin").read_bytes() == upload.read_bytes()
    got = curl("--user", "ann:ann-secret", f"ftp://127.0.0.1:{port}/up.bin")
    assert got.returncode == 0 and got.stdout == upload.read_bytes()
    wrong = curl("--user", "ann:nope", f"ftp://127.0.0.1:{port}/")
    assert wrong.returncode == 67, (wrong.returncode, wrong.stderr)
    local = curl("--user", "local:local-pw", "-T", str(upload), f"ftp://127.0.0.1:{port}/l.bin")
    assert local.returncode == 0, local.stderr
    assert (root / "local" / "l.bin").is_file()


def check_lftp_read_only(
    port: int, root: pathlib.Path, tmp_path: pathlib.Path, user: str, password: str
) -> None:
    """``user`` has "elr": lftp lists and downloads ``readme.txt`` ("read me"), and its upload
    is refused with 550, nothing stored."""
    require_tool("lftp")
    (tmp_path / "new.txt").write_text("x")
    proc = run(
        ["lftp", "-u", f"{user},{password}", "-p", str(port), "127.0.0.1", "-e",
         "set cmd:fail-exit false; set net:max-retries 1; cls -1; get readme.txt -o "
         f"{tmp_path / 'got.txt'}; put {tmp_path / 'new.txt'}; bye"],
        check=False, cwd=tmp_path,
    )
    out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    assert "readme.txt" in out, (out, err)
    assert (tmp_path / "got.txt").read_bytes() == b"read me\n"
    assert "550" in err, err
    assert not (root / user / "new.txt").exists()
