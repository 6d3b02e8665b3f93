"""The operator console in a real browser (SPEC C-7): Debian's Chromium, driven by Selenium,
against the live process as `make run` starts it, beside web, worker and scheduler.

Serial and bounded: one browser for the module, one stack, a timeout on every test.
Windows are short (a 3 s group window), set through the environment like any deployment.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from parley.conversations.models import Conversation, Message, MessageGroup
from parley.tenants.models import Tenant
from tests.e2e.conftest import Stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
AXE = Path(__file__).parent / "axe" / "axe.min.js"
WINDOW_SECONDS = 3.0
# How long a reply may take to be written and shown, on a loaded machine (a bound, not a target).
REPLY_WAIT_SECONDS = WINDOW_SECONDS + 20
PASSWORD = "console-e2e-password"

# Committed data (the processes must see it), flushed after each test.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    if os.environ.get("PARLEY_REQUIRE_SERVICES"):
        raise RuntimeError(
            "The browser tests need Debian's chromium and chromium-driver (.ci/run)."
        )
    pytest.skip("Debian's chromium and chromium-driver are not installed", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Browser:
    """A Chromium and the helpers the tests share."""

    def __init__(self, stack: Stack, workdir: Path) -> None:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (
            "--headless=new",
            "--no-sandbox",  # CI runs as root
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1280,900",
            f"--user-data-dir={workdir / 'chromium-profile'}",
            # No traffic but to the page: this machine's network is closed.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-quic",
            "--no-first-run",
        ):
            options.add_argument(flag)
        service = Service(str(CHROMEDRIVER), log_output=str(workdir / "chromedriver.log"))
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(30)
        self.driver.set_script_timeout(30)
        self.stack = stack

    def open(self, path: str) -> None:
        self.driver.get(self.stack.live_url + path)

    def wait(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
                lambda _: predicate()
            )
        except TimeoutException as exc:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}") from exc

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def count(self, css: str) -> int:
        return int(self.js("return document.querySelectorAll(arguments[0]).length", css))

    def text(self, css: str) -> str:
        return str(
            self.js(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''", css
            )
        )

    @property
    def link(self) -> str:
        return str(
            self.js(
                "const e = document.getElementById('link-state'); return e ? e.dataset.state : ''"
            )
        )

    def wait_live(self, timeout: float = 15.0) -> None:
        self.wait(lambda: self.link == "live", timeout, "the stream to connect")

    def mark(self) -> None:
        """Set a mark on the window: gone after any reload."""
        self.js("window.__consoleMark = 'still here'")

    def marked(self) -> bool:
        return self.js("return window.__consoleMark") == "still here"

    def click(self, css: str) -> None:
        """Click an element, found again if a patch replaced it meanwhile."""

        def clicked() -> bool:
            try:
                self.driver.find_element(By.CSS_SELECTOR, css).click()
            except StaleElementReferenceException:
                return False
            return True

        self.wait(clicked, 5, f"a click on {css}")

    def log_in(self, username: str, password: str) -> None:
        self.driver.find_element(By.ID, "id_username").send_keys(username)
        self.driver.find_element(By.ID, "id_password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()

    def countdown(self, css: str) -> float:
        text = self.text(css)
        found = re.search(r"([0-9]+\.[0-9]) s", text)
        assert found, f"no countdown in {text!r}"
        return float(found.group(1))


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(module_stack_factory: Callable[..., Stack]) -> Stack:
    return module_stack_factory(
        window=WINDOW_SECONDS, tolerance=1.0, live=True, LIVE_GRACEFUL_SECONDS="1"
    )


@pytest.fixture(scope="module")
def chromium(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    browser = Browser(stack, tmp_path_factory.mktemp("browser"))
    yield browser
    browser.driver.quit()


@pytest.fixture
def staff(transactional_db: Any) -> User:
    return User.objects.create_user("operator", password=PASSWORD, is_staff=True)


@pytest.fixture
def browser(chromium: Browser, staff: User) -> Browser:
    """The module's browser, logged in as a staff user (each test's data is its own)."""
    client = Client()
    client.force_login(staff)
    chromium.open("/console/login/")  # the cookie's origin
    chromium.driver.delete_all_cookies()
    chromium.driver.add_cookie(
        {"name": "sessionid", "value": client.cookies["sessionid"].value, "path": "/"}
    )
    return chromium


def open_conversation(stack: Stack, tenant_id: uuid.UUID | None = None) -> str:
    conversation_id = str(uuid.uuid4())
    data: dict[str, Any] = {"id": conversation_id}
    response = stack.post({"type": "NEW_CONVERSATION", "timestamp": now_iso(), "data": data})
    assert response.status == 201, response.body
    if tenant_id is not None:
        Conversation.objects.filter(pk=conversation_id).update(tenant_id=tenant_id)
    return conversation_id


def say(stack: Stack, conversation_id: str, content: str) -> str:
    message_id = str(uuid.uuid4())
    response = stack.post(
        {
            "type": "NEW_MESSAGE",
            "timestamp": now_iso(),
            "data": {"id": message_id, "conversation_id": conversation_id, "content": content},
        }
    )
    assert response.status == 202, response.body
    return message_id


# --- C-1 ------------------------------------------------------------------------------------------


def test_the_console_wants_the_login_of_a_staff_user(chromium: Browser, staff: User) -> None:
    browser = chromium
    User.objects.create_user("visitor", password=PASSWORD, is_staff=False)
    browser.open("/console/login/")
    browser.driver.delete_all_cookies()

    browser.open("/console/p/events/")
    assert "/console/login/?next=/console/p/events/" in browser.driver.current_url

    browser.log_in("visitor", PASSWORD)
    browser.wait(lambda: "staff account" in browser.driver.page_source, what="the refusal")

    browser.driver.find_element(By.ID, "id_username").clear()
    browser.log_in(staff.username, PASSWORD)
    browser.wait(lambda: browser.driver.current_url.endswith("/console/p/events/"))
    browser.wait_live()

    # Logged out elsewhere: the stream is refused at its next connection, and the page says so.
    browser.driver.delete_all_cookies()
    browser.js("window.dispatchEvent(new Event('pagehide'))")  # drop the stream, as a restart would
    browser.js("document.dispatchEvent(new Event('htmx:afterSettle'))")
    browser.wait(lambda: browser.link == "signed-out", 10, "the signed-out state")
    assert "log in" in browser.text("#link-state")


# --- C-2, C-4 ---------------------------------------------------------------------------------


def test_a_new_conversation_and_its_messages_appear_without_a_reload_within_a_second(
    browser: Browser, stack: Stack
) -> None:
    browser.open("/console/")
    browser.wait_live()
    browser.mark()

    started = time.monotonic()
    conversation_id = open_conversation(stack)
    browser.wait(lambda: browser.count(f"#row-{conversation_id}") == 1, 5, "the new row")
    row_after = time.monotonic() - started

    started = time.monotonic()
    say(stack, conversation_id, "Is the flat on Elm Street still free?")
    browser.wait(
        lambda: "Elm Street" in browser.text(f"#row-{conversation_id} .snippet"), 5, "the message"
    )
    message_after = time.monotonic() - started

    assert row_after < 1.0, f"the conversation took {row_after:.2f} s"
    assert message_after < 1.0, f"the message took {message_after:.2f} s"
    assert browser.marked()  # no reload
    # Newest activity first, with its pending reply counting down.
    assert browser.js("return document.querySelector('tbody tr').id") == f"row-{conversation_id}"
    assert browser.count(f"#row-{conversation_id} .countdown") == 1


# --- C-3 --------------------------------------------------------------------------------------


def test_a_countdown_falls_in_real_time_extends_on_a_message_and_gives_way_to_the_reply_once(
    browser: Browser, stack: Stack
) -> None:
    conversation_id = open_conversation(stack)
    browser.open(f"/console/conversations/{conversation_id}/")
    browser.wait_live()
    browser.mark()

    say(stack, conversation_id, "first")
    browser.wait(lambda: browser.count(".group .countdown") == 1, 5, "the group's countdown")
    first = browser.countdown(".group .countdown")
    time.sleep(1.5)
    later = browser.countdown(".group .countdown")
    assert first <= WINDOW_SECONDS + 0.1
    assert 1.1 <= first - later <= 1.9, (first, later)  # about a second per second

    second = say(stack, conversation_id, "second, within the window")
    browser.wait(lambda: browser.count(f"#msg-{second}") == 1, 5, "the second message")
    extended = browser.countdown(".group .countdown")
    assert extended > later + 0.5, (later, extended)  # the due time moved on

    browser.wait(
        lambda: browser.count("li[data-type=OUTBOUND]") == 1 and browser.count(".group") == 0,
        REPLY_WAIT_SECONDS,
        "the reply",
    )
    time.sleep(1.0)  # a later patch must not bring the card back or add a second reply
    assert browser.count("li[data-type=OUTBOUND]") == 1
    assert browser.count(".group") == 0
    assert "Received messages:" in browser.text("li[data-type=OUTBOUND] .content")
    assert browser.count("li[data-type=INBOUND]") == 2
    assert browser.marked()


def test_countdowns_run_on_the_server_clock_when_the_browser_clock_is_an_hour_off(
    browser: Browser, stack: Stack
) -> None:
    skew = browser.driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {"source": "(() => { const real = Date.now; Date.now = () => real() + 3600000; })();"},
    )
    try:
        conversation_id = open_conversation(stack)
        say(stack, conversation_id, "what time is it?")
        browser.open(f"/console/conversations/{conversation_id}/")
        browser.wait_live()
        assert browser.js("return Math.round((Date.now() - new Date().getTime()) / 60000)") == 60
        remaining = browser.countdown(".group .countdown")
        assert 0.5 < remaining <= WINDOW_SECONDS + 0.1
    finally:
        browser.driver.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": skew["identifier"]}
        )


# --- C-6: keys --------------------------------------------------------------------------------


def test_j_and_k_move_through_the_list_and_enter_opens_a_conversation(
    browser: Browser, stack: Stack
) -> None:
    older = open_conversation(stack)
    newer = open_conversation(stack)
    browser.open("/console/")
    browser.wait(lambda: browser.count(f"#row-{newer}") == 1)
    browser.wait_live()

    def focused() -> str:
        return str(browser.js("return document.activeElement.closest('tr')?.id || ''"))

    def press(key: str) -> None:
        # To whatever has the focus, as a person's keyboard does.
        ActionChains(browser.driver).send_keys(key).perform()

    press("j")
    assert focused() == f"row-{newer}"
    press("j")
    assert focused() == f"row-{older}"
    press("k")
    assert focused() == f"row-{newer}"
    press(Keys.ENTER)
    browser.wait(lambda: browser.driver.current_url.endswith(f"/console/conversations/{newer}/"))
    browser.wait_live()


# --- C-5 --------------------------------------------------------------------------------------


HOSTILE = [
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned = 'onerror'\">",
    "<a href=\"javascript:window.__pwned = 'link'\">click me</a>",
    "framing\r\n\r\nevent: patch\r\ndata: <img src=x onerror=\"window.__pwned='framed'\">\r\n\r\n",
    '<button hx-get="/console/session/" hx-trigger="load" hx-target="body">htmx</button>',
]


def test_hostile_message_content_shows_as_text_and_the_next_event_still_applies(
    browser: Browser, stack: Stack
) -> None:
    conversation_id = open_conversation(stack)
    browser.open(f"/console/conversations/{conversation_id}/")
    browser.wait_live()

    hostile_ids = [say(stack, conversation_id, text) for text in HOSTILE]
    browser.wait(lambda: all(browser.count(f"#msg-{i}") for i in hostile_ids), 5, "the messages")
    after = say(stack, conversation_id, "an ordinary message after them")
    browser.wait(lambda: browser.count(f"#msg-{after}") == 1, 5, "the next message")

    for message_id, text in zip(hostile_ids, HOSTILE, strict=True):
        shown = browser.text(f"#msg-{message_id} .content")
        assert shown == text.replace("\r\n", "\n").replace("\r", "\n"), shown
    thread = "#conversation-thread"
    assert browser.count(f"{thread} script, {thread} img, {thread} a[href^=javascript]") == 0
    assert browser.count(f"{thread} .content button") == 0
    assert browser.js("return window.__pwned === undefined")
    # The list shows the last texts as text too.
    say(stack, conversation_id, HOSTILE[1])
    browser.open("/console/")
    browser.wait(lambda: "onerror" in browser.text(f"#row-{conversation_id} .snippet"))
    assert browser.count("#conversation-list img") == 0
    assert browser.js("return window.__pwned === undefined")


# --- actions ----------------------------------------------------------------------------------


def test_closing_a_conversation_from_its_page(browser: Browser, stack: Stack) -> None:
    conversation_id = open_conversation(stack)
    say(stack, conversation_id, "please close me")
    browser.open(f"/console/conversations/{conversation_id}/")
    browser.wait_live()

    browser.click("button[data-action=conversation_close]")
    browser.wait(lambda: browser.driver.switch_to.alert, 5, "the confirmation")
    browser.driver.switch_to.alert.accept()

    browser.wait(lambda: "Conversation closed." in browser.text("#notice"), 5, "the notice")
    browser.wait(lambda: "Manual close" in browser.text("#conversation-meta"), 5, "the status")
    assert browser.count("button[data-action=conversation_close]") == 0
    conversation = Conversation.objects.get(pk=conversation_id)
    assert (conversation.status, conversation.close_reason) == ("CLOSED", "manual")
    # G-5: the pending group is answered at once.
    browser.wait(
        lambda: browser.count("li[data-type=OUTBOUND]") == 1, REPLY_WAIT_SECONDS, "the reply"
    )


# --- C-4: a restart ---------------------------------------------------------------------------


def test_the_page_recovers_from_a_restart_of_the_live_process_with_the_missed_events_once(
    browser: Browser, stack: Stack
) -> None:
    conversation_id = open_conversation(stack)
    before = say(stack, conversation_id, "before the restart")
    browser.open(f"/console/conversations/{conversation_id}/")
    browser.wait(lambda: browser.count(f"#msg-{before}") == 1)
    browser.wait_live()
    browser.mark()

    stack.kill("live")
    browser.wait(lambda: browser.link in ("reconnecting", "offline"), 10, "the link to drop")
    missed = say(stack, conversation_id, "said while the live process was down")
    stack.start_live()

    browser.wait_live(timeout=20)
    browser.wait(lambda: browser.count(f"#msg-{missed}") == 1, 10, "the missed message")
    assert browser.count(f"#msg-{before}") == 1
    browser.wait(
        lambda: browser.count("li[data-type=OUTBOUND]") == 1 and browser.count(".group") == 0,
        REPLY_WAIT_SECONDS,
        "the reply",
    )
    time.sleep(1.0)
    assert browser.count("li[data-type=INBOUND]") == 2
    assert browser.count("li[data-type=OUTBOUND]") == 1
    assert browser.marked()  # recovered by the stream, not by a reload


# --- C-6: accessibility, and the README's screenshots -----------------------------------------


def showcase(stack: Stack) -> tuple[str, str]:
    """A few conversations of two tenants in every state; returns (a rich one, a failed one)."""
    acme = Tenant.objects.create(id=uuid.uuid4(), name="Acme Rentals", time_zone="Europe/Lisbon")
    blue = Tenant.objects.create(
        id=uuid.uuid4(), name="Blue Bank", time_zone="America/Sao_Paulo", idle_close_after=900
    )
    rich = open_conversation(stack, acme.pk)
    say(stack, rich, "Hi, I would like information about renting an apartment.")
    say(stack, rich, "Two bedrooms, near the station if possible.")
    closed = open_conversation(stack, blue.pk)
    say(stack, closed, "How do I block my card?")
    failed = open_conversation(stack, blue.pk)
    say(stack, failed, "Can I change the due date of my invoice?")
    stack.settle(timeout=REPLY_WAIT_SECONDS, conversation_ids=[rich, closed])
    say(stack, rich, "Also: are pets allowed?")
    Conversation.objects.filter(pk=closed).update(
        status="CLOSED", close_reason="idle", closed_at=timezone.now(), csat=5, nps=9
    )
    MessageGroup.objects.filter(conversation_id=failed).update(
        status="FAILED",
        reply_due_at=None,
        reply_attempts=5,
        failed_at=timezone.now(),
        last_error="TimeoutError: the reply writer did not answer within 10 s",
    )
    Message.objects.filter(conversation_id=failed, type="OUTBOUND").delete()
    return rich, failed


def axe(browser: Browser) -> list[dict[str, Any]]:
    browser.js(AXE.read_text())
    violations = browser.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map("
        "  v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))));"
    )
    return [v for v in violations if v["impact"] in ("serious", "critical")]


def test_axe_finds_no_serious_or_critical_violation_in_light_or_dark(
    browser: Browser, stack: Stack
) -> None:
    rich, failed = showcase(stack)
    pages = [
        "/console/",
        f"/console/conversations/{rich}/",
        f"/console/conversations/{failed}/",
        "/console/p/tenants/",
        "/console/p/events/",
    ]
    found: dict[str, Any] = {}
    try:
        for scheme in ("light", "dark"):
            browser.driver.execute_cdp_cmd(
                "Emulation.setEmulatedMedia",
                {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
            )
            for path in pages:
                browser.open(path)
                browser.wait_live()
                if violations := axe(browser):
                    found[f"{scheme} {path}"] = violations
    finally:
        browser.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    assert found == {}, json.dumps(found, indent=2)


def test_screenshots_of_the_list_and_a_thread(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    """Written to docs/ by `make screenshots` (CONSOLE_SCREENSHOTS), else to a temporary folder."""
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    rich, _ = showcase(stack)
    shots = []
    try:
        for scheme in ("light", "dark"):
            browser.driver.execute_cdp_cmd(
                "Emulation.setEmulatedMedia",
                {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
            )
            for name, path in (
                ("list", "/console/"),
                ("thread", f"/console/conversations/{rich}/"),
            ):
                browser.open(path)
                browser.wait_live()
                browser.js("document.activeElement.blur()")
                target = folder / f"console-{name}-{scheme}.png"
                assert browser.driver.save_screenshot(str(target))
                shots.append(target)
    finally:
        browser.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    assert all(shot.stat().st_size > 10_000 for shot in shots)
