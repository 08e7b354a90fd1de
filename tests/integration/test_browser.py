"""The single-host demo (bin/setup) in a real browser, as its user sees it: Debian's chromium driven
by Playwright logs in as `demo` over https, fills the resource form, watches Grid Engine's progress
messages, runs a cell in JupyterLab and stops the server from the hub's home page; a refused field
and a job Grid Engine refuses show their reasons on the page.

Screenshots of each step go to $JHSALT_SCREENSHOTS (e.g. docs/screenshots, shown in README.md) or
to a temporary folder; on a failure the page is saved there too (the message names the file).

Tests run in order on one module-scoped host and one browser page.
"""

import contextlib
import os
import re
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
# Debian's chromium as root on a machine whose only network is the test bridge (no sandbox: root)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}
WAIT = 60_000  # ms: a page, a form answer
TIMINGS = {}
# kept across page loads (sessionStorage): every progress message the spawn page showed, so the
# test sees them even when the page has already moved on to JupyterLab
RECORD_PROGRESS = """
new MutationObserver(() => {
  const log = document.getElementById("progress-log");
  if (log && log.innerText) sessionStorage.setItem("jhsalt-progress", log.innerText);
}).observe(document, {childList: true, subtree: true, characterData: true});
"""


@pytest.fixture(scope="module")
def sync_playwright():
    """Playwright's sync API, or a skip where chromium or Playwright is missing (a failure in CI)."""
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "the Playwright package is not installed (./bootstrap.sh --tests installs it)"
    if not reason and not os.access(CHROMIUM, os.X_OK):
        reason = f"{CHROMIUM} is not installed (./bootstrap.sh --tests installs Debian's chromium)"
    if reason and os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test: {reason}")
    if reason:
        pytest.skip(reason)
    return sync_playwright


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Folder of the screenshots: $JHSALT_SCREENSHOTS or a temporary one."""
    folder = Path(os.environ.get("JHSALT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def demo(sync_playwright, make_host):  # no host is booted where the browser test is skipped
    host = make_host("browser")
    started = time.monotonic()
    setup = host.run(["/srv/formula/bin/setup"], timeout=1800)  # the README's command
    TIMINGS["bin/setup"] = time.monotonic() - started
    match = re.search(r"Log in as 'demo' with the password '([0-9a-f]+)'", setup.stdout)
    assert match, setup.stdout[-3000:]
    host.password = match.group(1)
    yield host
    host.stop()
    print("\nbrowser test timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in TIMINGS.items()))


@pytest.fixture(scope="module")
def page(sync_playwright, demo, shots, tmp_path_factory):
    # Chromium runs in a network namespace of its own on the demo's network: it aborts every request
    # in flight (ERR_NETWORK_CHANGED, "Your connection was interrupted") when any interface of its
    # namespace changes, and the other test workers add and remove interfaces all the time
    namespace = demo.network.client_namespace()
    chromium = tmp_path_factory.mktemp("chromium") / "chromium"
    chromium.write_text(f'#!/bin/sh\nexec ip netns exec {namespace} {CHROMIUM} "$@"\n')
    chromium.chmod(0o755)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(ignore_https_errors=True, viewport=VIEWPORT)  # self-signed
        context.set_default_timeout(WAIT)
        context.add_init_script(RECORD_PROGRESS)
        page = context.new_page()
        # what went wrong while a page loaded, for see()'s reload and its error message
        page.failures = []
        page.on("requestfailed", lambda r: page.failures.append(f"request failed: {r.method} {r.url}: {r.failure}"))
        page.on("response", lambda r: r.status >= 500 and page.failures.append(f"response {r.status}: {r.url}"))
        page.on("pageerror", lambda exc: page.failures.append(f"page error: {exc}"))
        page.on("console", lambda m: m.type == "error" and page.failures.append(f"console error: {m.text}"))
        page.shots = shots
        page.base = f"https://{demo.ip}"
        yield page
        context.close()
        browser.close()


def shot(page, name):
    path = page.shots / f"{name}.png"
    page.screenshot(path=path)
    return path


def see(page, selector, text, timeout=WAIT, what=None):
    """Wait until the element `selector` shows `text` (a regex): its text; else fail with the page's
    text, what failed while it loaded (page.failures) and a screenshot. A page whose own requests
    failed (a script load aborted, a 5xx) is reloaded once, halfway through the wait, as a user
    would; the reload and its reason are printed."""
    from playwright.sync_api import Error

    pattern = re.compile(text)
    started = time.monotonic()
    deadline, halfway = started + timeout / 1000, started + timeout / 2000
    failures_before, reloaded = len(page.failures), False
    shown = ""
    while time.monotonic() < deadline:
        failed = [f for f in page.failures[failures_before:] if f.startswith(("request", "response"))]
        if failed and not reloaded and time.monotonic() > halfway:
            print(f"reloading {page.url} while waiting for {what or text!r}: {failed[:3]}")
            reloaded = True
            with contextlib.suppress(Error):
                page.reload()
        try:
            element = page.locator(selector).first
            element.wait_for(state="visible", timeout=5_000)
            shown = element.inner_text(timeout=5_000)
            if pattern.search(shown):
                return shown
        except Error:  # not there yet, or the page is loading the next one
            pass
        page.wait_for_timeout(500)
    try:
        body = page.locator("body").inner_text(timeout=5_000)
        saved = shot(page, f"failed-{re.sub(r'[^a-z0-9]+', '-', (what or text).lower())[:40]}")
    except Error as exc:
        body, saved = f"(page not readable: {exc})", None
    failures = "\n".join(page.failures[failures_before:][-20:])
    raise AssertionError(f"timed out after {timeout / 1000:.0f} s waiting for {what or text!r} in {selector} "
                         f"at {page.url}\n--- {selector} ---\n{shown}\n--- page ---\n{body[-3000:]}\n"
                         f"--- failed while loading ---\n{failures}\n--- screenshot: {saved}")


def goto(page, path):
    """Open a page of the hub. Chromium aborts a load with net::ERR_NETWORK_CHANGED when any network
    interface of the machine changes (e.g. another test run adds its bridge): load it again then."""
    from playwright.sync_api import Error

    for attempt in range(5):
        try:
            return page.goto(f"{page.base}{path}")
        except Error as exc:
            if "ERR_NETWORK_CHANGED" not in str(exc) or attempt == 4:
                raise
            page.wait_for_timeout(1000)


def open_form(page):
    goto(page, "/hub/spawn")
    see(page, "#spawn_form", "Queue", what="the spawn form")


def fill_form(page, **values):
    for name, value in values.items():
        page.fill(f"#sge-{name}", str(value))


def submit(page):
    page.locator("#spawn_form button[type=submit]").click()


def test_login_shows_the_resource_form(demo, page):
    goto(page, "/")
    see(page, "form", "Password", what="the login form")
    page.fill("#username_input", "demo")
    page.fill("#password_input", demo.password)
    page.click("#login_submit")
    see(page, "#spawn_form", "Queue", what="the spawn form after logging in")
    for field, label in [("queue", "Queue"), ("slots", "Slots"), ("ram", "RAM"), ("runtime", "Run time")]:
        assert label in page.locator(f"label[for=sge-{field}]").inner_text()
        assert page.locator(f"#sge-{field}").is_visible(), field
    assert page.input_value("#sge-queue") == "all.q"
    assert page.input_value("#sge-runtime") == "08:00:00"
    assert page.input_value("#sge-ui") == "lab"
    # what the cluster has free, next to the queue and the PE (the demo host: its cores)
    see(page, "#sge-queue-load", r"^Now: (\d+) of \1 slots free$", what="the queue's free slots")
    see(page, "#sge-pe-load", r"^Now: (\d+) of \1 slots free$", what="the PE's free slots")
    assert not page.locator("#sge-wait-warning").is_visible()
    shot(page, "1-form")


def test_the_browser_refuses_more_slots_than_the_form_allows(page):
    open_form(page)
    fill_form(page, slots=99)
    submit(page)
    message = page.eval_on_selector("#sge-slots", "e => e.validationMessage")
    maximum = page.get_attribute("#sge-slots", "max")  # the demo offers the host's cores
    assert maximum and int(maximum) < 99 and maximum in message, (maximum, message)
    assert page.url.endswith("/hub/spawn"), page.url  # nothing was sent


def test_a_refused_field_shows_its_message_on_the_form(page):
    open_form(page)
    fill_form(page, slots=1, runtime="99:00:00")
    submit(page)
    see(page, ".spawn-error-msg", r"runtime: 99:00:00 is longer than the maximum 72:00:00",
        what="the run time refusal")
    see(page, "#spawn_form", "Queue", what="the form again")
    shot(page, "4-field-error")


def test_a_job_grid_engine_refuses_shows_its_reason(demo, page):
    demo.run(["qmod", "-d", "all.q"])  # no slot anywhere: Grid Engine cannot start anything now
    try:
        open_form(page)
        submit(page)
        see(page, ".spawn-error-msg", r"Grid Engine cannot start this request now: .*all\.q@.* "
            r"dropped because it is temporarily not available", what="Grid Engine's reason, before submit")
        see(page, "#spawn_form", "Queue", what="the form again")
        shot(page, "5-grid-engine-refusal")
    finally:
        demo.run(["qmod", "-e", "all.q"])
    assert "jupyterhub" not in demo.run(["qstat", "-u", "demo"]).stdout


def test_the_form_says_before_submit_when_the_slots_are_taken(demo, page):
    """Another job holds every slot: the form shows it, warns while the user fills it in, and
    Grid Engine's reason comes back before anything is submitted."""
    cores = demo.run(["nproc"]).stdout.strip()  # the demo cell's slots
    blocker = demo.run(["runuser", "-u", "demo", "--", "env", "SGE_ROOT=/var/lib/gridengine", "SGE_CELL=default",
                        "/usr/bin/qsub", "-terse", "-b", "y", "-pe", "smp", cores, "-o", "/dev/null", "-j", "y",
                        "sleep", "600"]).stdout.strip()
    try:
        deadline = time.monotonic() + 60
        while f"{blocker} " not in demo.run(["qstat", "-s", "r", "-u", "demo"]).stdout + " ":
            assert time.monotonic() < deadline, "the blocking job did not start"
            time.sleep(1)
        time.sleep(11)  # the form's view of the cluster is at most one poll interval (10 s) old
        open_form(page)
        see(page, "#sge-queue-load", r"^Now: 0 of \d+ slots free", what="no free slot on the form")
        fill_form(page, slots=1)
        see(page, "#sge-wait-warning", r"Only 0 slots are free right now.*cannot start this request now",
            what="the warning before submit")
        page.locator("#sge-wait-warning").scroll_into_view_if_needed()
        shot(page, "6-no-free-slots")
        submit(page)
        see(page, ".spawn-error-msg", r"Grid Engine cannot start this request now: ", what="Grid Engine's reason")
    finally:
        demo.run(["qdel", blocker], check=False)
        # qdel only asks: the job holds its slots (state dr) until its shepherd has ended it
        deadline = time.monotonic() + 60
        while blocker in [line.split()[0] for line in demo.run(["qstat", "-u", "demo"]).stdout.splitlines()[2:]]:
            assert time.monotonic() < deadline, "the blocking job did not leave the queue"
            time.sleep(1)
    assert "jupyterhub" not in demo.run(["qstat", "-u", "demo"]).stdout


def test_a_server_starts_runs_a_cell_and_stops(demo, page):
    open_form(page)
    started = time.monotonic()
    submit(page)
    see(page, "#progress-log, #progress-message", r"Job \d+ submitted|running on", what="the progress page")
    try:  # the page moves on to JupyterLab within seconds: a best-effort picture of the progress
        page.evaluate("document.getElementById('progress-details').open = true")
        see(page, "#progress-log", r"starting Jupyter", timeout=30_000, what="starting Jupyter")
        shot(page, "2-progress")
    except Exception as exc:  # noqa: BLE001 - the assertions below do not depend on it
        print(f"no progress screenshot: {exc}"[:300])
    page.wait_for_url(re.compile(r"/user/demo/lab"), timeout=300_000)
    TIMINGS["form to JupyterLab"] = time.monotonic() - started
    progress = page.evaluate("sessionStorage.getItem('jhsalt-progress')") or ""
    # "Job N submitted" shows only when the page asks before the job runs: a server that starts
    # within a second (without rfc3987-syntax) is often already running by then
    for said in [r"Submitting the job \(.*queue=all\.q", r"Submitting the job \(.*runtime=08:00:00",
                 r"Job \d+ is running on browser; starting Jupyter"]:
        assert re.search(said, progress), f"{said!r} not among the progress messages:\n{progress}"

    see(page, ".jp-LauncherCard", "Python 3", timeout=120_000, what="the JupyterLab launcher")
    page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click()
    # a cell run before the kernel is connected is not run at all: wait for it
    see(page, "#jp-main-statusbar", r"Python 3 \(ipykernel\) \| Idle", timeout=120_000, what="the kernel")
    news = page.get_by_role("button", name="No", exact=True)  # JupyterLab asks once about its news
    if news.is_visible():
        news.click()
    editor = page.locator(".jp-NotebookPanel:visible .jp-Cell .cm-content").first
    editor.click()
    page.keyboard.type("print(6*7)")
    page.keyboard.press("Shift+Enter")
    see(page, ".jp-NotebookPanel:visible .jp-OutputArea-output", r"^\s*42\s*$", timeout=120_000,
        what="the cell's output 42")
    TIMINGS["form to a cell's output"] = time.monotonic() - started
    shot(page, "3-lab")
    assert re.search(r"\sdemo\s+r\s.*@browser", demo.run(["qstat", "-u", "demo"]).stdout)

    goto(page, "/hub/home")
    see(page, ".sge-time-left", r"^7 h 5\d min left: Grid Engine stops your server \(job \d+\) at \d\d:\d\d",
        what="the time left of the 08:00:00 run time")
    shot(page, "7-time-left")
    see(page, "#stop", "Stop My Server", what="the stop button")
    page.click("#stop")
    see(page, "#start", "Start My Server", timeout=120_000, what="the server stopped")
    deadline = time.monotonic() + 60
    while "demo" in demo.run(["qstat", "-u", "demo"]).stdout:
        assert time.monotonic() < deadline, "the job is still in the queue a minute after the stop"
        time.sleep(1)


def test_the_classic_notebook_interface_can_be_chosen(demo, page):
    open_form(page)
    page.select_option("#sge-ui", "notebook")
    submit(page)
    page.wait_for_url(re.compile(r"/user/demo/tree"), timeout=300_000)
    see(page, ".jp-DirListing", "Name", timeout=120_000, what="the notebook's file browser")
    goto(page, "/hub/home")
    page.click("#stop")
    see(page, "#start", "Start My Server", timeout=120_000, what="the server stopped")
