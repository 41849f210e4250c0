"""`vlmkit webchat` (issue 19 item 4) in a real headless browser: the README's command serves the page, Chromium
uploads a generated video, sees the sampled frames, asks, reads the streamed answer off the page and compares it with
`vlmkit.load(...).generate` (= evaluate.py's prediction = `vlmkit infer`'s), asks a second turn (`chat` with the
history), changes a generation setting, starts over, picks an example. A screenshot goes to the test's folder and
`output/test_screenshots/webchat.png`. Skipped, with the set-up step to run, where Chromium or chromedriver is
missing; `make test` installs them where it can."""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.inference.browser import chromium_or_skip, fresh_profile, headless_chromium, remote, requested_urls

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "output" / "test_screenshots" / "webchat.png"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(argv, cwd, url, timeout=300):
    """The command in its own process group, once ``url`` answers."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"vlmkit webchat exited with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            if direct.open(url, timeout=5).status == 200:
                return proc
        except OSError:
            time.sleep(1)
    stop(proc)
    raise AssertionError(f"vlmkit webchat did not answer on {url} within {timeout}s")


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Page:
    """The web chat as a user sees it. Texts are read in one script call each: Gradio re-renders elements while an
    answer streams, and an element found first and read later may be gone by then."""

    def __init__(self, browser):
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        self.browser = browser
        self.wait = WebDriverWait(browser, 240, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException])

    def find(self, css, many=False):
        from selenium.webdriver.common.by import By

        return (self.browser.find_elements if many else self.browser.find_element)(By.CSS_SELECTOR, css)

    def texts(self, css):
        return self.browser.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText.trim())", css)

    def status_becomes(self, text):
        self.wait.until(lambda _: self.texts("#status") == [text],
                        message=f"the status line never showed {text!r}")

    def ask(self, question, turn, expected):
        """The last answer shown once the status says the turn is answered, given a moment to show ``expected``
        (the status and the chat are re-rendered separately)."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        box = self.find("#question textarea")
        box.send_keys(question)
        self.find("#send").click()
        self.status_becomes(f"Answered (turn {turn}).")
        try:
            WebDriverWait(self.browser, 20, poll_frequency=0.2).until(lambda _: self.messages("bot")[-1:] == [expected])
        except TimeoutException:
            pass  # the assertion shows what the page holds
        return self.messages("bot")[-1]

    def messages(self, who):
        return self.texts(f'#chat [data-testid="{who}"]')

    def set_number(self, elem_id, value):
        from selenium.webdriver.common.keys import Keys

        field = self.find(f"#{elem_id} input[type=number]")
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(str(value), Keys.TAB)
        self.wait.until(lambda _: field.get_attribute("value") == str(value))

    def pick_example(self, label):
        self.find("#examples input").click()
        option = self.wait.until(lambda _: next((o for o in self.find("#examples li, ul.options li", many=True)
                                                 if o.text.strip() == label), None),
                                 message=f"no example {label!r} in the list")
        option.click()

    def thumbnails(self) -> int:
        """How many of the gallery's pictures have loaded."""
        return self.browser.execute_script(
            "return Array.from(document.querySelectorAll('#frames img')).filter(i => i.complete && i.naturalWidth)"
            ".length")


@pytest.fixture(scope="session")
def chromium():
    """(browser, chromedriver), or a skip with the set-up step; before ``tiny``, so a skip trains nothing."""
    return chromium_or_skip()


@pytest.mark.slow
def test_webchat_in_a_headless_browser(chromium, tiny, tmp_path):
    import vlmkit

    binary, driver = chromium
    folder, run, _, records = tiny
    first = next(r for r in records.values() if r["prediction"])
    second = next(r for r in records.values() if r is not first)
    video = first["media"]
    model = vlmkit.load(str(run))
    frames = model.contract.num_frames

    line = re.search(r"^vlmkit webchat .*$", (ROOT / "README.md").read_text(), re.M).group(0)
    argv = shlex.split(line)
    port = free_port()
    argv[argv.index("--port") + 1] = str(port)
    url = f"http://127.0.0.1:{port}/"
    server = serve([sys.executable, "-m", "vlmkit.cli", *argv[1:]], folder, url)
    browser = headless_chromium(binary, driver, fresh_profile())
    page = Page(browser)
    try:
        browser.get(url)
        page.wait.until(lambda _: page.find("#video input[type=file]", many=True), message="no upload field")
        page.find("#video input[type=file]").send_keys(video)  # a generated mp4 of the tiny data set
        page.status_becomes("Video ready: ask a question.")
        assert page.texts("#frames-info")[0].startswith(f"{frames} frames sampled")
        page.wait.until(lambda _: page.thumbnails() == frames, message=f"the gallery never showed {frames} frames")

        answer = model.generate(video, first["question"])
        assert answer == first["prediction"]  # evaluate.py's, which `vlmkit infer` prints (test_infer_cmd)
        shown = " ".join(answer.split())  # as the page lays the text out
        assert page.ask(first["question"], 1, shown) == shown

        history = [{"role": "user", "content": first["question"]}, {"role": "assistant", "content": answer},
                   {"role": "user", "content": second["question"]}]
        shown = " ".join(model.chat(history, video).split())
        assert page.ask(second["question"], 2, shown) == shown
        assert page.messages("user") == [first["question"], second["question"]] and len(page.messages("bot")) == 2
        browser.save_screenshot(str(tmp_path / "webchat.png"))

        page.set_number("max-new-tokens", 3)
        page.find("#reset").click()
        page.status_becomes("New conversation.")
        assert page.messages("bot") == []
        short = model.generate(video, first["question"], max_new_tokens=3)
        shown = " ".join(short.split())
        assert short != answer and page.ask(first["question"], 1, shown) == shown

        page.pick_example(Path(second["media"]).name)  # from --examples: a new video, a new conversation
        page.status_becomes("Video ready: ask a question.")
        assert page.messages("bot") == []
        page.wait.until(lambda _: page.thumbnails() == frames, message=f"the gallery never showed {frames} frames")

        leaks = remote(requested_urls(browser), "127.0.0.1")
        assert not leaks, f"the page fetched from elsewhere than the app: {leaks[:5]}"
    except BaseException:
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)  # what the page showed when it went wrong
        browser.save_screenshot(str(SCREENSHOT.with_name("webchat-failed.png")))
        raise
    finally:
        try:
            browser.quit()
        finally:
            stop(server)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / "webchat.png", SCREENSHOT)
