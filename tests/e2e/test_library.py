"""The library's first use: a new crate with one dependency and the README's six lines.

The hello-world program is taken from README.md as written (between the
``library-hello-world`` markers), built as a crate of its own outside the
workspace with ``ftpgate`` as its only dependency, started, and used by
Python's ftplib: login, upload, listing, download.
"""

from __future__ import annotations

import ftplib
import io
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import time

from conftest import REPO_ROOT


def readme_hello_world() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(
        r"<!-- library-hello-world -->\s*```rust\n(.*?)```\s*<!-- /library-hello-world -->",
        readme,
        re.S,
    )
    assert block, "README.md has no library hello-world block"
    return block.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readme_hello_world_is_six_lines_and_serves(tmp_path: pathlib.Path) -> None:
    source = readme_hello_world()
    assert len(source.strip().splitlines()) <= 6, source
    port = free_port()
    assert "127.0.0.1:2121" in source
    project = tmp_path / "hello-ftp"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.rs").write_text(source.replace("127.0.0.1:2121", f"127.0.0.1:{port}"))
    (project / "Cargo.toml").write_text(
        "[package]\n"
        'name = "hello-ftp"\n'
        'version = "0.1.0"\n'
        'edition = "2021"\n\n'
        "[dependencies]\n"
        f'ftpgate = {{ path = "{REPO_ROOT / "crates" / "ftpgate"}" }}\n\n'
        "[workspace]\n"
    )
    # The workspace's lock file pins the same versions, so the build reuses what the
    # workspace build compiled (in the same target directory) and needs no network.
    shutil.copy(REPO_ROOT / "Cargo.lock", project / "Cargo.lock")
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO_ROOT / "target"))
    build = subprocess.run(
        ["cargo", "build", "--offline", "--quiet"],
        cwd=project,
        env={**os.environ, "CARGO_TARGET_DIR": target},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stderr[-4000:]

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    server = subprocess.Popen(
        [str(pathlib.Path(target) / "debug" / "hello-ftp")],
        cwd=run_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ftp = ftplib.FTP()
                ftp.connect("127.0.0.1", port, timeout=10)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode(errors="replace")
                assert time.monotonic() < deadline, "the hello-world server never listened"
                time.sleep(0.1)
        with ftp:
            try:
                ftp.login("demo", "wrong")
                raise AssertionError("a wrong password logged in")
            except ftplib.error_perm as e:
                assert str(e).startswith("530")
        with ftplib.FTP() as ftp:
            ftp.connect("127.0.0.1", port, timeout=10)
            ftp.login("demo", "secret")
            payload = os.urandom(300_000)
            ftp.storbinary("STOR hello.bin", io.BytesIO(payload))
            assert "hello.bin" in ftp.nlst()
            got = io.BytesIO()
            ftp.retrbinary("RETR hello.bin", got.write)
            assert got.getvalue() == payload
        assert (run_dir / "data" / "hello.bin").read_bytes() == payload
        # Ctrl-C / SIGTERM stop it cleanly.
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_the_storage_suite_runs_from_a_crate_outside_the_workspace(tmp_path: pathlib.Path) -> None:
    """A backend author's own crate: the in-memory backend of the examples as its library,
    and the behaviour suite as a dev-dependency, run by ``cargo test`` there."""
    project = tmp_path / "my-backend"
    (project / "src").mkdir(parents=True)
    (project / "tests").mkdir()
    example = REPO_ROOT / "crates" / "ftpgate" / "examples" / "custom_storage.rs"
    (project / "src" / "lib.rs").write_text(
        f'#[path = "{example}"]\n'
        "#[allow(dead_code)]\n"
        "mod custom_storage;\n"
        "pub use custom_storage::MemoryStorage;\n"
    )
    (project / "tests" / "suite.rs").write_text(
        "use std::sync::Arc;\n"
        "use ftpgate_core::Storage;\n\n"
        "async fn fresh_root() -> (Arc<dyn Storage>, ()) {\n"
        "    (Arc::new(my_backend::MemoryStorage::default()), ())\n"
        "}\n\n"
        "ftpgate_test_support::storage_suite!(fresh_root);\n"
    )
    crates = REPO_ROOT / "crates"
    (project / "Cargo.toml").write_text(
        "[package]\n"
        'name = "my-backend"\n'
        'version = "0.1.0"\n'
        'edition = "2021"\n\n'
        "[dependencies]\n"
        f'ftpgate = {{ path = "{crates / "ftpgate"}" }}\n'
        f'ftpgate-core = {{ path = "{crates / "ftpgate-core"}" }}\n'
        'async-trait = "0.1"\n'
        'futures-util = "0.3"\n'
        'tokio = { version = "1", features = ["macros", "rt-multi-thread"] }\n\n'
        "[dev-dependencies]\n"
        f'ftpgate-test-support = {{ path = "{crates / "ftpgate-test-support"}" }}\n\n'
        "[workspace]\n"
    )
    shutil.copy(REPO_ROOT / "Cargo.lock", project / "Cargo.lock")
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO_ROOT / "target"))
    run = subprocess.run(
        ["cargo", "test", "--offline", "--test", "suite"],
        cwd=project,
        env={**os.environ, "CARGO_TARGET_DIR": target},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    passed = re.search(r"test result: ok\. (\d+) passed; 0 failed", run.stdout)
    assert passed and int(passed.group(1)) >= 25, run.stdout[-2000:]
