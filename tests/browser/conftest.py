"""Fixtures of the browser tests: Debian's chromium driven by Playwright, and the sandbox under test.

- `browser`: one headless /usr/bin/chromium for the session, launched with the flags this machine needs
  (its network is closed: no background networking, no component updates, no QUIC). Before it starts, the
  installed chromium's major version is checked against tests/browser/versions: a missing browser or another
  major is a failure, never a skip.
- `page`: a fresh browser context (1280x800, downloads accepted) per test; when the test fails, a screenshot
  and the page's HTML are saved under target/browser/ (named after the test).
- `sandbox`: `$AFB_BIN demo --web --listen 127.0.0.1:0` started for one test, its `sandbox:` and `audit:`
  lines read from stdout (the contract: /work/prompts16/contract.md, "Starting it"), stopped with SIGTERM at
  the end (it must exit 0), killed if it does not.

`AFB_BIN` is the debug bot binary; scripts/test builds it and sets it.
"""

from __future__ import annotations

import json
import os
import pathlib
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

REPO = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "target" / "browser"
VERSIONS = pathlib.Path(__file__).resolve().parent / "versions"
CHROMIUM = "/usr/bin/chromium"
# As this machine needs them (/work/.library/env/machines/rust.md): root, no GPU, a closed network.
# Playwright adds a fresh temporary --user-data-dir itself.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10
SANDBOX_LINE = re.compile(r"^sandbox: (http://\S+)$")
AUDIT_LINE = re.compile(r"^audit: .* --config (\S+)$")

# Assertions wait for the page's server-sent updates; a run in the emulator takes seconds.
expect.set_options(timeout=20_000)


def pinned_chromium_major() -> int:
    """The `chromium=N` line of tests/browser/versions."""
    for line in VERSIONS.read_text().splitlines():
        if line.startswith("chromium="):
            return int(line.split("=", 1)[1].strip())
    raise AssertionError(f"{VERSIONS} has no chromium=MAJOR line")


def installed_chromium() -> tuple[int, str]:
    """(major, the whole `chromium --version` line) of /usr/bin/chromium; fails the test when absent."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
            "(scripts/test installs it: apt-get install chromium)",
            pytrace=False,
        )
    out = subprocess.run(
        [CHROMIUM, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    match = re.search(r"Chromium (\d+)\.", out)
    if not match:
        pytest.fail(f"`{CHROMIUM} --version` printed {out!r}, not `Chromium N.…`", pytrace=False)
    return int(match.group(1)), out


def check_chromium_version() -> str:
    """Fails unless the installed chromium is the pinned major; returns its version line."""
    major, line = installed_chromium()
    pinned = pinned_chromium_major()
    if major != pinned:
        pytest.fail(
            f"{CHROMIUM} is {line!r} but the browser tests are pinned to chromium {pinned} "
            f"(tests/browser/versions, with playwright in tests/browser/requirements.txt): "
            "check the new pair works and update both",
            pytrace=False,
        )
    return line


@pytest.fixture(scope="session")
def browser() -> Browser:
    """Headless Debian chromium (the pinned major) under Playwright, for the whole session."""
    check_chromium_version()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, chromium_sandbox=False
        )
        yield browser
        browser.close()


def artifact_name(node_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", node_name)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the item, so that `page` can tell whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser: Browser, request) -> Page:
    """A page in a fresh context (1280x800, downloads accepted); on failure saves its screenshot and HTML."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = artifact_name(request.node.name)
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            (ARTIFACTS / f"{name}.html").write_text(page.content())
            print(f"saved target/browser/{name}.png and .html")
        except Exception as err:  # the page may be gone; the test's own failure is what matters
            print(f"could not save the page of {name}: {err}")
    context.close()


def afb_bin() -> str:
    """The bot binary from `AFB_BIN`; fails (never skips) when unset or not executable."""
    path = os.environ.get("AFB_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.fail(
            f"AFB_BIN={path!r} is not an executable bot binary; run the browser tests through "
            "scripts/test (it builds target/debug/aurora-failover-bot and sets AFB_BIN)",
            pytrace=False,
        )
    return path


@dataclass
class Sandbox:
    """A running `demo --web`: its page URL, the audit config printed at start, and its output so far."""

    url: str
    audit_config: str
    process: subprocess.Popen
    stderr_path: pathlib.Path
    stdout_lines: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:PORT`, where the page, the bot's endpoints and the sandbox API are."""
        match = re.match(r"^(http://[^/]+)", self.url)
        assert match, self.url
        return match.group(1)

    def get_json(self, path: str):
        """GET `path` (e.g. `/sandbox/api/state`) and parse it as JSON."""
        with urllib.request.urlopen(self.origin + path, timeout=10) as resp:
            return json.load(resp)

    def state(self, within_s: float = 10) -> dict:
        """GET /sandbox/api/state; retried for `within_s` while the sandbox restarts (a scenario starting
        closes its connections and binds the address again)."""
        deadline = time.monotonic() + within_s
        while True:
            try:
                return self.get_json("/sandbox/api/state")
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def current_audit_config(self) -> str:
        """The config of the current scenario's store (it changes when a scenario starts)."""
        return self.state()["audit_config"]

    def audit_entries(self, config: str | None = None) -> list[dict]:
        """`$AFB_BIN audit --config CONFIG --format jsonl`, one dict per line, in order."""
        config = config or self.current_audit_config()
        out = subprocess.run(
            [afb_bin(), "audit", "--config", config, "--format", "jsonl"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert out.returncode == 0, f"audit exited {out.returncode}: {out.stderr}"
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


def read_stdout(process: subprocess.Popen, lines: queue.Queue) -> None:
    """Forwards every stdout line to `lines` (and keeps the pipe drained); None at the end."""
    for line in process.stdout:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def wait_for_start(process, lines: queue.Queue, stderr_path, seen: list[str]) -> tuple[str, str]:
    """Reads stdout until both the `sandbox:` and the `audit:` line came, within START_TIMEOUT_S."""
    deadline = time.monotonic() + START_TIMEOUT_S
    url = config = None
    while url is None or config is None:
        left = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(left, 0.01)) if left > 0 else None
        except queue.Empty:
            line = None
        if line is None:
            stop(process)
            exited = process.poll() is not None
            why = "exited" if exited else f"printed no sandbox:/audit: lines in {START_TIMEOUT_S} s"
            pytest.fail(
                f"demo --web {why} (exit {process.returncode}); stdout so far: {seen!r}\n"
                f"stderr:\n{stderr_path.read_text(errors='replace')}",
                pytrace=False,
            )
        seen.append(line)
        if m := SANDBOX_LINE.match(line):
            url = m.group(1)
        elif m := AUDIT_LINE.match(line):
            config = m.group(1)
    return url, config


def stop(process: subprocess.Popen) -> int:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; returns the exit code (negative: killed by a signal)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@pytest.fixture
def sandbox(request) -> Sandbox:
    """`$AFB_BIN demo --web --listen 127.0.0.1:0` for one test; stopped (SIGTERM, must exit 0) after it."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stderr_path = ARTIFACTS / f"{artifact_name(request.node.name)}.demo.stderr"
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(
            [afb_bin(), "demo", "--web", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True, cwd=REPO,
        )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=read_stdout, args=(process, lines), daemon=True).start()
    seen: list[str] = []
    url, config = wait_for_start(process, lines, stderr_path, seen)
    box = Sandbox(url=url, audit_config=config, process=process, stderr_path=stderr_path, stdout_lines=seen)
    yield box
    code = stop(process)
    assert code == 0, f"demo --web exited {code} on SIGTERM (the contract says 0); stderr:\n{box.stderr()}"
