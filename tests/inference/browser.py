"""A headless Chromium driven by selenium for the web-chat test: found on this machine or a visible skip reason,
started with nothing that reaches the network on its own, and a record of every URL the page requested."""
from __future__ import annotations

import json
import shutil
import tempfile
from urllib.parse import urlparse

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SETUP = "make browser (apt-get install chromium chromium-driver, as root) and pip install -e '.[dev]'"
# the browser's own pages (its new-tab page) and inline data, besides the app itself
LOCAL_SCHEMES = ("data", "blob", "chrome", "chrome-extension", "about", "devtools")


def chromium_or_skip():
    """(browser binary, chromedriver); the test is skipped, with the set-up step to run, when one is missing."""
    pytest.importorskip("selenium", reason=f"selenium is not installed: {SETUP}")
    binary = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        missing = " and ".join(n for n, found in (("chromium", binary), ("chromedriver", driver)) if found is None)
        pytest.skip(f"no {missing} on this machine: {SETUP}")
    return binary, driver


def headless_chromium(binary: str, driver: str, profile: str):
    """A headless Chromium with a fresh profile; its background networking is off (the machine may be offline,
    and nothing should leave it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--no-proxy-server", "--window-size=1400,1300",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request, to check none left
    return webdriver.Chrome(service=Service(driver), options=options)


def requested_urls(browser) -> list[str]:
    """The URLs the page asked for since the last call (from Chrome's performance log)."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def remote(urls: list[str], host: str) -> list[str]:
    """The URLs that are neither the app's (``host``) nor the browser's own."""
    return [u for u in urls if urlparse(u).scheme not in LOCAL_SCHEMES and urlparse(u).hostname != host]


def fresh_profile() -> str:
    return tempfile.mkdtemp(prefix="vlmkit-chromium-")
