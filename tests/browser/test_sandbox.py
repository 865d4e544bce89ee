"""The sandbox page of `aurora-failover-bot demo --web`, played in headless chromium as its people would:
alice asks, alice and dave may not approve, bob approves, the thread tells each step, a Region lost in the
middle of a detach ends truthfully, the timeline is the audit trail, a deny needs a reason.

Each test has its own `demo --web` process (the `sandbox` fixture) and browser context (`page`).
"""

from __future__ import annotations

import json
import os
import shutil

from playwright.sync_api import Page, expect

from conftest import ARTIFACTS, REPO
from sandbox_page import (
    ALICE,
    BOB,
    COMPLETE,
    DAVE,
    NOT_APPROVER,
    OWN_REQUEST,
    REASON_REQUIRED,
    STEPS,
    SandboxPage,
)


def no_run(sandbox) -> bool:
    """No run started: the API's `run` is null, or names the request with no run state yet."""
    run = sandbox.state()["run"]
    return run is None or run.get("state") is None


def test_the_requester_asks_and_only_she_sees_her_command_and_the_bots_answer(page: Page, sandbox):
    sp = SandboxPage(page, sandbox).open()
    request = sp.ask_failover()

    expect(sp.button(request, "approve")).to_have_text("Approve")
    expect(sp.button(request, "deny")).to_have_text("Deny")
    expect(request).to_contain_text("Waiting for approval")
    expect(request).to_contain_text("orders")
    echo = page.locator("#channel .msg.ephemeral.command").filter(visible=True)
    expect(echo).to_have_count(1)
    expect(echo).to_contain_text("/aurora failover orders")
    answers = page.locator("#channel .msg.ephemeral:not(.command)").filter(visible=True)
    expect(answers.filter(has_text="Request #1")).not_to_have_count(0)

    sp.as_user(BOB)
    expect(sp.ephemerals()).to_have_count(0)
    expect(sp.request_message()).to_have_count(1)

    sp.as_user(ALICE)
    expect(echo).to_have_count(1)
    # No thread was opened: the thread pane stays hidden (contract, "DOM": hidden until opened).
    expect(page.locator("#thread")).to_be_hidden()


def test_the_requester_cannot_approve_her_own_request(page: Page, sandbox):
    sp = SandboxPage(page, sandbox).open()
    request = sp.ask_failover()

    sp.approve_as(ALICE, request)

    refusal = sp.ephemerals().filter(has_text=OWN_REQUEST)
    expect(refusal).to_have_count(1)
    expect(request).to_contain_text("Waiting for approval")
    expect(sp.button(request, "approve")).to_have_count(1)
    expect(sp.run_state()).to_have_text("")
    assert no_run(sandbox)
    sp.as_user(BOB)
    expect(sp.ephemerals().filter(has_text=OWN_REQUEST)).to_have_count(0)


def test_a_stranger_cannot_approve(page: Page, sandbox):
    sp = SandboxPage(page, sandbox).open()
    request = sp.ask_failover()

    sp.approve_as(DAVE, request)

    expect(sp.ephemerals().filter(has_text=NOT_APPROVER)).to_have_count(1)
    expect(request).to_contain_text("Waiting for approval")
    expect(sp.button(request, "approve")).to_have_count(1)
    expect(sp.run_state()).to_have_text("")
    assert no_run(sandbox)


def approve_and_follow(sp: SandboxPage):
    """alice asks, bob approves, the run succeeds; returns (request message, its open thread, mode)."""
    request = sp.ask_failover()
    mode = sp.mode_of(request)
    sp.approve_as(BOB, request)
    assert sp.wait_run_over() == "succeeded", sp.run_state().inner_text()
    return request, sp.open_thread(request), mode


def test_an_approver_approves_and_the_thread_tells_each_step_and_the_outcome(page: Page, sandbox):
    sp = SandboxPage(page, sandbox).open()
    request, thread, mode = approve_and_follow(sp)

    replies = thread.locator(".msg.reply")
    # The replies only: the request message above them names the running step until its last edit
    # (CI saw the page read before that edit).
    expect(replies.last).to_contain_text(COMPLETE[mode])
    text = "\n".join(replies.all_inner_texts())
    positions = []
    for step in STEPS[mode]:
        expect(replies.filter(has_text=step)).not_to_have_count(0)
        positions.append(text.index(step))
    assert positions == sorted(positions), f"the steps are out of order in the thread: {text}"
    expect(replies.last).to_contain_text(COMPLETE[mode])
    expect(thread.locator(".msg:not(.reply)")).to_contain_text("Failover request #1")
    expect(request.locator(".edited")).to_have_count(1)
    expect(request).to_contain_text("Completed")
    expect(request).not_to_contain_text("Waiting for approval")
    expect(sp.button(request, "approve")).to_have_count(0)
    assert sp.sandbox.state()["run"]["state"] == "succeeded"

    # The README's picture: mid-scenario, thread open, run succeeded.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "sandbox.png"
    page.screenshot(path=str(shot))
    if os.environ.get("SANDBOX_SCREENSHOT_UPDATE") == "1":
        shutil.copyfile(shot, REPO / "docs" / "sandbox.png")


def test_us_east_1_lost_during_a_detach_ends_in_needs_attention_or_the_truth(page: Page, sandbox):
    sp = SandboxPage(page, sandbox).open()
    request = sp.ask_failover("--mode detach")
    assert sp.mode_of(request) == "detach"
    sp.approve_as(BOB, request)
    expect(sp.run_state()).to_have_text("running")
    page.click("#region-down-us-east-1")
    east = page.locator('#aws .region[data-region="us-east-1"]')
    expect(east).to_have_attribute("data-up", "false")
    thread = sp.open_thread(request)

    # The DNS step retries for runbook.dns_timeout_secs (60 s in the demo) before it needs attention.
    ending = sp.wait_run_over(timeout_ms=150_000)
    said = thread.locator(".msg.reply").last.inner_text()
    aws = page.locator("#aws")
    writer_cname = aws.locator("tr").filter(has_text="writer CNAME").inner_text()
    # orders-west's row in the clusters' table (the calls' table names no status `standalone`).
    west = aws.locator("tr").filter(has_text="orders-west").filter(has_text="standalone")
    expect(east).to_have_attribute("data-up", "false")
    if ending == "needs attention":
        # The thread says the target is promoted and DNS still where it was; AWS shows exactly that. (The
        # bot goes on watching after it: observations may follow the needs-attention reply.)
        attention = thread.locator(".msg.reply").filter(has_text="Needs attention")
        expect(attention).not_to_have_count(0)
        said = attention.last.inner_text()
        assert "Repoint the CNAMEs" in said, said
        assert "orders-west is the writer" in said, said
        expect(west).to_have_count(1)
        assert "available" in west.inner_text(), west.inner_text()
        assert "still point where they did before the run (at orders-east" in said, said
        assert "orders-east" in writer_cname, writer_cname
        expect(request).to_contain_text("Needs attention")
    else:
        # Any other ending must be what AWS shows: a success only with DNS on the promoted cluster.
        assert ending == "succeeded", (ending, said)
        assert COMPLETE["detach"] in said, said
        assert "orders-west" in writer_cname, writer_cname
    assert sp.sandbox.state()["run"]["state"] == ending


def rows_of(entries: list[dict]) -> list[tuple[str, str, str]]:
    return [(e["kind"], e["what"], e["at"]) for e in entries]


def test_the_timeline_is_the_audit_trail(page: Page, sandbox):
    sp = SandboxPage(page, sandbox).open()
    approve_and_follow(sp)

    audit = rows_of(sandbox.audit_entries())
    assert len(audit) > 0
    timeline = page.locator("#timeline .tl-row")
    expect(timeline).to_have_count(len(audit))
    shown = [
        (r.get_attribute("data-kind"), r.get_attribute("data-what"), r.get_attribute("data-at"))
        for r in timeline.all()
    ]
    assert shown == audit

    with page.expect_download() as download:
        page.click("#timeline-download")
    downloaded = json.loads(open(download.value.path()).read())
    assert rows_of(downloaded["entries"]) == audit
    assert downloaded["entries"] == sandbox.audit_entries()
    assert [s["step"] for s in downloaded["steps"]], downloaded["steps"]


def test_a_deny_from_the_pending_list_needs_a_reason_and_shows_it(page: Page, sandbox):
    sp = SandboxPage(page, sandbox).open()
    request = sp.ask_failover()
    sp.as_user(BOB)
    sp.send("/aurora pending")
    listing = sp.ephemerals().filter(has=page.locator('button.blk-button[data-action-id="pending_deny"]'))
    expect(listing).to_have_count(1)
    listing.locator('button.blk-button[data-action-id="pending_deny"]').click()

    modal = page.locator("#modal")
    expect(modal).to_be_visible()
    page.click("#modal-submit")
    expect(modal.locator(".modal-error")).to_contain_text(REASON_REQUIRED)
    expect(modal).to_be_visible()

    reason = "the game day ends here: us-east-1 is healthy"
    modal.locator('[data-block-id="reason"] textarea, [data-block-id="reason"] input').first.fill(reason)
    page.click("#modal-submit")
    expect(modal).to_be_hidden()
    expect(request).to_contain_text("Denied")
    expect(request).to_contain_text(reason)
    expect(request.locator(".edited")).to_have_count(1)
    expect(sp.button(request, "approve")).to_have_count(0)
    assert no_run(sandbox)


def test_a_ready_scenario_starts_a_fresh_world_and_the_controls_change_the_emulated_aws(page: Page, sandbox):
    sp = SandboxPage(page, sandbox).open()
    sp.ask_failover()
    sp.start_scenario("east-lost-during-detach")

    # A fresh world: the goal of the scenario, an empty channel but for the scenario's own line.
    expect(page.locator("#scenario-goal")).to_contain_text("/aurora failover orders --mode detach")
    expect(page.locator("#scenario")).to_have_value("east-lost-during-detach")
    expect(sp.request_message()).to_have_count(0)
    expect(page.locator("#channel .msg.notice")).to_have_count(1)
    expect(page.locator("#run-state")).to_have_text("")

    # Move the writer CNAME by hand: the AWS panel and the channel say so, and /aurora status sees the drift.
    aws = page.locator("#aws")
    expect(aws.locator('[data-record="writer"]')).to_contain_text("orders-east writer endpoint")
    page.select_option("#cname-record", "writer")
    page.select_option("#cname-target", "us-west-2")
    page.click("#cname")
    expect(aws.locator('[data-record="writer"]')).to_contain_text("orders-west writer endpoint")
    expect(page.locator("#channel .msg.notice").last).to_contain_text("by hand")

    # A Region down and up again, as the panel shows it.
    page.click("#region-down-us-west-2")
    expect(aws.locator('.region[data-region="us-west-2"]')).to_have_attribute("data-up", "false")
    page.click("#region-up-us-west-2")
    expect(aws.locator('.region[data-region="us-west-2"]')).to_have_attribute("data-up", "true")

    # A throttle is listed until cleared; a bad value is refused on the page and changes nothing.
    page.select_option("#throttle-action", "ChangeResourceRecordSets")
    page.fill("#throttle-count", "2")
    page.click("#throttle")
    expect(aws).to_contain_text("ChangeResourceRecordSets Throttling ×2")
    page.click("#clear-faults")
    expect(aws).not_to_contain_text("Throttling")
    page.fill("#insync-ms", "99999999")
    page.click("#insync")
    expect(page.locator("#control-error")).to_contain_text("more than the sandbox allows")
    assert sandbox.state()["aws"]["timings"]["dns_propagation_ms"] == 2000


def test_text_is_shown_as_typed_never_as_markup(page: Page, sandbox):
    """Slack escapes &, < and > in message text; the page shows the characters, and never runs markup."""
    sp = SandboxPage(page, sandbox).open()
    request = sp.ask_failover('--reason "<b>x</b> & <img src=x onerror=alert(1)> y"')
    expect(request).to_contain_text("<b>x</b> & <img src=x onerror=alert(1)> y")
    expect(request.locator("img")).to_have_count(0)
    expect(request.locator("b", has_text="x")).to_have_count(0)
    # The bot's own mrkdwn is formatted: the cluster's name in bold.
    expect(request.locator("b", has_text="orders")).not_to_have_count(0)
