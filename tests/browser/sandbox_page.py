"""The sandbox page as the tests use it, by the ids and classes of the contract (/work/prompts16/contract.md,
"DOM"): who is looking, the command box, the channel and its messages, the thread pane, the confirm
dialog, the modal, the scenarios and the run's state.

The bot's words the tests look for are the bot's own (src/slack/render.rs, src/runbook/mod.rs).
"""

from __future__ import annotations

import re
import time

from playwright.sync_api import Locator, Page, expect

from conftest import Sandbox

ALICE, BOB, CAROL, DAVE = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"

# A run's steps by mode, as the thread names them (src/runbook/mod.rs, Step::label), and the final answer.
STEPS = {
    "switchover": [
        "Re-check the topology",
        "Switch over (managed, no data loss)",
        "Wait until the target is the writer",
        "Repoint the CNAMEs",
        "Wait for Route 53 INSYNC",
        "Verify the records",
    ],
    "failover": [
        "Re-check the topology",
        "Fail over (managed, data loss allowed)",
        "Wait until the target is the writer",
        "Repoint the CNAMEs",
        "Wait for Route 53 INSYNC",
        "Verify the records",
    ],
    "detach": [
        "Re-check the topology",
        "Detach and promote the target",
        "Wait until the target is writable",
        "Repoint the CNAMEs",
        "Wait for Route 53 INSYNC",
        "Verify the records",
    ],
}
COMPLETE = {
    "switchover": "Switchover complete",
    "failover": "Failover complete",
    "detach": "Failover complete",
}
OWN_REQUEST = "You cannot approve your own request: a second person must."
NOT_APPROVER = "You are not an approver of failover requests."
REASON_REQUIRED = "Say why: the reason is posted in the request's thread."
# A run that is over shows one of these in #run-state.
RUN_ENDINGS = ("succeeded", "needs attention", "failed")
RUN_TIMEOUT_MS = 90_000


class SandboxPage:
    """One person's view of the sandbox (the `#user` select says who)."""

    def __init__(self, page: Page, sandbox: Sandbox):
        self.page = page
        self.sandbox = sandbox

    def open(self) -> SandboxPage:
        self.page.goto(self.sandbox.url)
        expect(self.page.locator("#channel")).to_be_attached()
        return self

    def as_user(self, user: str) -> SandboxPage:
        self.page.select_option("#user", user)
        return self

    def send(self, command: str) -> None:
        """Types `command` (a whole `/aurora …` line) in #command and sends it."""
        self.page.fill("#command", command)
        self.page.click("#send")

    def top_level(self) -> Locator:
        """The channel's top-level messages this user can see (ephemeral ones for others are hidden)."""
        return self.page.locator("#channel .msg[data-ts]").filter(visible=True)

    def ephemerals(self) -> Locator:
        return self.page.locator("#channel .msg.ephemeral").filter(visible=True)

    def request_message(self, number: int = 1) -> Locator:
        """The approval request message `Failover request #N` (not an ephemeral)."""
        return self.page.locator("#channel .msg[data-ts]:not(.ephemeral)").filter(
            has_text=f"Failover request #{number}:"
        )

    def button(self, message: Locator, action_id: str) -> Locator:
        return message.locator(f'button.blk-button[data-action-id="{action_id}"]')

    def click_confirmed(self, button: Locator) -> None:
        """Clicks a button that asks for confirmation and answers yes in #confirm."""
        button.click()
        expect(self.page.locator("#confirm")).to_be_visible()
        self.page.click("#confirm-yes")
        expect(self.page.locator("#confirm")).to_be_hidden()

    def ask_failover(self, extra: str = "") -> Locator:
        """As alice, `/aurora failover orders EXTRA`; returns the approval request once it has its buttons."""
        self.as_user(ALICE)
        self.send(f"/aurora failover orders {extra}".strip())
        request = self.request_message()
        expect(request).to_have_count(1)
        expect(self.button(request, "approve")).to_have_count(1)
        return request

    def mode_of(self, request: Locator) -> str:
        """The mode the request message names (`Mode: switchover`)."""
        text = request.inner_text()
        for mode in STEPS:
            if f"Mode: {mode}" in text or f"Mode:{mode}" in text.replace(" ", ""):
                return mode
        raise AssertionError(f"the request message names no mode: {text!r}")

    def approve_as(self, user: str, request: Locator) -> None:
        self.as_user(user)
        self.click_confirmed(self.button(request, "approve"))

    def run_state(self) -> Locator:
        return self.page.locator("#run-state")

    def wait_run_over(self, timeout_ms: int = RUN_TIMEOUT_MS) -> str:
        """Waits until #run-state shows an ending (RUN_ENDINGS) and returns it."""
        ending = re.compile("^(" + "|".join(RUN_ENDINGS) + ")$")
        try:
            expect(self.run_state()).to_have_text(ending, timeout=timeout_ms)
        except AssertionError as err:
            # Whether the page stopped following the server (its SSE) or the run itself is still going.
            live = self.page.locator("#connection").inner_text()
            run = self.sandbox.state()["run"]
            why = f"{err}\nthe page's #connection says {live!r}; the API's run: {run}"
            raise AssertionError(why) from None
        return self.run_state().inner_text().strip()

    def open_thread(self, message: Locator) -> Locator:
        """Opens `message`'s thread (its `a.replies` link); returns the #thread pane."""
        message.locator("a.replies").click()
        thread = self.page.locator("#thread")
        expect(thread).to_be_visible()
        return thread

    def start_scenario(self, scenario: str) -> None:
        """Starts `scenario` with #scenario-start and waits until the API names a new store's config."""
        before = self.sandbox.current_audit_config()
        self.page.select_option("#scenario", scenario)
        self.page.click("#scenario-start")
        deadline = time.monotonic() + 30
        while self.sandbox.current_audit_config() == before:
            assert time.monotonic() < deadline, f"starting {scenario} changed no audit_config in 30 s"
            time.sleep(0.2)
