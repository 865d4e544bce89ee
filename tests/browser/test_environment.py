"""The browser tests' environment: the pinned chromium is installed and Playwright drives it."""

from conftest import CHROMIUM, check_chromium_version, pinned_chromium_major


def test_the_installed_chromium_is_the_pinned_major_version():
    line = check_chromium_version()
    assert line.startswith(f"Chromium {pinned_chromium_major()}."), (CHROMIUM, line)


def test_playwright_drives_the_system_chromium(browser):
    assert browser.version.split(".")[0] == str(pinned_chromium_major())
