"""The admin listener's status page in a real browser (headless Chromium): with a download
and an upload running, the page, given the token once in its URL, fetches /api/sessions with
it and shows each session's user and a progress bar for the download. A screenshot is kept in
the output directory (FTPGATE_E2E_OUTPUT, default target/e2e-output)."""

from __future__ import annotations

import ftplib
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import (
    REPO_ROOT,
    TEST_PASSWORD,
    TEST_USER,
    _free_control_port,
    _free_passive_range,
    _ftpgate_bin,
    _server_kind,
    _spawn,
    _stop,
    _wait_until_ready,
)
from e2e_support import write_random

TOKEN = "e2e-admin-token-0123456789"
TIMEOUT = 15


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("FTPGATE_E2E_REQUIRE_TOOLS", "0") not in ("", "0"):
        pytest.fail("chromium is not installed (scripts/test.sh installs it)", pytrace=False)
    pytest.skip("chromium is not installed")


def output_dir() -> pathlib.Path:
    out = pathlib.Path(os.environ.get("FTPGATE_E2E_OUTPUT", REPO_ROOT / "target" / "e2e-output"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def admin_server(tmp_path):
    if _server_kind() != "ftpgate":
        pytest.skip("the admin listener is ftpgate's")
    root = tmp_path / "ftproot"
    root.mkdir()
    port = _free_control_port()
    admin_port = _free_control_port()
    lo, hi = _free_passive_range(exclude=port)
    config = tmp_path / "ftpgate.toml"
    config.write_text(f'[admin]\ntoken = "{TOKEN}"\n', encoding="utf-8")
    cmd = [
        str(_ftpgate_bin()), "serve", "--config", str(config),
        "--root", str(root), "--listen", f"127.0.0.1:{port}",
        "--user", TEST_USER, "--password", TEST_PASSWORD,
        "--passive-ports", f"{lo}-{hi}",
        "--admin-listen", f"127.0.0.1:{admin_port}",
    ]
    log = tmp_path / "server.log"
    proc = _spawn(cmd, tmp_path, log)
    try:
        _wait_until_ready(proc, port, log)
        yield port, admin_port, root
    finally:
        _stop(proc)
        print(log.read_text(errors="replace")[-20000:])


def sessions(admin_port: int) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{admin_port}/api/sessions",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return json.load(response)


def login(port: int) -> ftplib.FTP:
    client = ftplib.FTP(timeout=TIMEOUT)
    client.connect("127.0.0.1", port)
    client.login(TEST_USER, TEST_PASSWORD)
    client.voidcmd("TYPE I")
    return client


def test_status_page_shows_users_and_transfer_progress_in_chromium(admin_server, tmp_path):
    browser = chromium()
    port, admin_port, root = admin_server
    write_random(root / "big.bin", 64 * 1024 * 1024, 7)

    # A download that stalls: the client reads a little, then stops reading.
    reader = login(port)
    download = reader.transfercmd("RETR big.bin")
    assert len(download.recv(65536)) > 0
    # An upload that pauses after 200 KiB.
    writer = login(port)
    upload = writer.transfercmd("STOR up.bin")
    upload.sendall(b"x" * 200 * 1024)

    deadline = time.monotonic() + TIMEOUT
    while True:
        doc = sessions(admin_port)
        running = {s["transfer"]["command"]: s["transfer"] for s in doc["sessions"] if s["transfer"]}
        if "RETR" in running and running.get("STOR", {}).get("bytes") == 200 * 1024:
            break
        assert time.monotonic() < deadline, doc
        time.sleep(0.05)
    assert running["RETR"]["size"] == 64 * 1024 * 1024
    assert 0 < running["RETR"]["bytes"] < 64 * 1024 * 1024
    assert running["STOR"]["size"] is None

    url = f"http://127.0.0.1:{admin_port}/status?token={TOKEN}"
    profile = tempfile.mkdtemp(dir=tmp_path)
    common = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={profile}", "--virtual-time-budget=3000",
    ]
    dom = subprocess.run(
        common + ["--dump-dom", url], capture_output=True, text=True, timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-3000:]
    page = dom.stdout
    # Rendered by the page's script from /api/sessions: both sessions, their user, a progress
    # bar for the download (its size is known) and bytes so far for the upload.
    assert page.count('<tr data-session="') == 2, page
    assert f'<td class="user">{TEST_USER}</td>' in page, page
    assert '<progress class="progress" max="67108864"' in page, page
    assert "200.0 KiB so far" in page, page
    assert "big.bin" in page and "up.bin" in page, page
    assert '<b id="total-transfers">2</b>' in page, page
    assert TOKEN not in page, "the token is not left in the page"

    shot = output_dir() / "status-page.png"
    screenshot = subprocess.run(
        common + ["--window-size=1280,600", f"--screenshot={shot}", url],
        capture_output=True, text=True, timeout=120,
    )
    assert screenshot.returncode == 0, screenshot.stderr[-3000:]
    assert shot.stat().st_size > 10_000, "an empty screenshot"

    # Without the token the page asks for it and shows no session.
    bare = subprocess.run(
        common + ["--dump-dom", f"http://127.0.0.1:{admin_port}/status"],
        capture_output=True, text=True, timeout=120,
    )
    assert "401" in bare.stdout or "Unauthorized" in bare.stdout or "token" in bare.stdout

    upload.close()
    writer.voidresp()
    download.close()
    try:
        reader.voidresp()
    except ftplib.all_errors:
        pass
    reader.close()
    writer.close()
