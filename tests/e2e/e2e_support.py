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
