"""The e-mail flows of a real `fafnir serve` against a real SMTP server (aiosmtpd on loopback),
read with Python's own mail parser: a person verifies an address, recovers a forgotten password
and changes an address from the links in the mails; the forgot-password answer does not tell
whether an account exists, in body or in time; a reset asked for while the mail server is down
arrives once it is back, exactly once.
"""

from __future__ import annotations

import email
import email.policy
import re
import statistics
import time

import pytest
import requests
from aiosmtpd.controller import Controller

from conftest import PASSWORD, Inbox, free_port, new_server, running

NEW_PASSWORD = "a brand new passphrase for ada"


class Mailbox:
    """aiosmtpd on a fixed port, which the test can stop and start again."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(raw, policy=email.policy.default)
            for _, rcpts, raw in self.inbox.messages
            if address in rcpts
        ]

    def wait(self, address: str, count: int, timeout: float = 20.0) -> list[email.message.EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.to(address)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{count} mails to {address} expected, got {len(self.to(address))}")


def text_of(msg: email.message.EmailMessage) -> str:
    assert msg.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}
    assert set(parts) == {"text/plain", "text/html"}
    return parts["text/plain"]


def link(msg: email.message.EmailMessage, path: str) -> str:
    m = re.search(r"(http://\S+" + re.escape(path) + r"\?token=[A-Za-z0-9_-]+)", text_of(msg))
    assert m, text_of(msg)
    return m.group(1)


def token_of(url: str) -> str:
    return url.split("token=", 1)[1]


@pytest.fixture
def mailbox():
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture
def server(tmp_path, mailbox):
    s = new_server(tmp_path, "mail")
    base_env = s.env

    def env() -> dict[str, str]:
        e = base_env()
        e.update(
            FAFNIR_SMTP_URL=f"smtp://127.0.0.1:{mailbox.port}",
            FAFNIR_MAIL_FROM="Acme Accounts <accounts@acme.test>",
            FAFNIR_PRODUCT_NAME="Acme",
            # Timing samples come from many client addresses (the per-address throttle).
            FAFNIR_TRUST_FORWARDED_FOR="true",
        )
        return e

    s.env = env  # type: ignore[method-assign]
    yield from running(s)


def post(server, path: str, body: dict, **kw) -> requests.Response:
    return requests.post(server.url(path), json=body, timeout=30, **kw)


def test_a_person_verifies_resets_and_changes_the_address_from_real_mails(server, mailbox):
    assert post(server, "/auth/register", {"email": "ada@example.com", "password": PASSWORD}).status_code == 201
    (welcome,) = mailbox.wait("ada@example.com", 1)
    assert welcome["From"] == "Acme Accounts <accounts@acme.test>"
    assert welcome["Subject"] == "Confirm your e-mail address for Acme"
    verify = link(welcome, "/verify-email")
    assert verify.startswith(server.base)
    # Opening the link (as a mail scanner would) shows a button and uses nothing.
    page = requests.get(verify, timeout=30)
    assert page.status_code == 200 and "Confirm my address" in page.text
    assert "no-referrer" in page.text
    assert post(server, "/auth/email/verify", {"token": token_of(verify)}).status_code == 204
    r = post(server, "/auth/email/verify", {"token": token_of(verify)})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "TOKEN_INVALID")

    # A session from before the reset ends with it.
    before = requests.post(
        server.url("/auth/token"),
        data={"grant_type": "password", "username": "ada@example.com", "password": PASSWORD},
        timeout=30,
    ).json()
    assert post(server, "/auth/password/forgot", {"email": "ada@example.com"}).status_code == 202
    reset = link(mailbox.wait("ada@example.com", 2)[1], "/reset-password")
    assert "Choose a new password" in requests.get(reset, timeout=30).text
    r = post(server, "/auth/password/reset", {"token": token_of(reset), "new_password": NEW_PASSWORD})
    assert r.status_code == 204, r.text
    gone = requests.get(server.url("/auth/me"), headers={"authorization": f"Bearer {before['access_token']}"}, timeout=30)
    assert gone.status_code == 401
    r = post(server, "/auth/refresh", {"refresh_token": before["refresh_token"]})
    assert r.status_code == 401, "the refresh family ended too"
    notice = mailbox.wait("ada@example.com", 3)[2]
    assert "reset" in notice["Subject"] and "signed out" in text_of(notice)

    # Change of address: the new address confirms, the old one is told twice.
    tok = requests.post(
        server.url("/auth/token"),
        data={"grant_type": "password", "username": "ada@example.com", "password": NEW_PASSWORD},
        timeout=30,
    ).json()["access_token"]
    bearer = {"authorization": f"Bearer {tok}"}
    r = post(server, "/auth/email/change", {"new_email": "ada@new.test", "current_password": NEW_PASSWORD}, headers=bearer)
    assert r.status_code == 202, r.text
    confirm = link(mailbox.wait("ada@new.test", 1)[0], "/confirm-email")
    requested = mailbox.wait("ada@example.com", 4)[3]
    assert "a***@new.test" in text_of(requested)
    assert post(server, "/auth/email/change/confirm", {"token": token_of(confirm)}).status_code == 204
    changed = mailbox.wait("ada@example.com", 5)[4]
    assert "was changed" in changed["Subject"]
    me = requests.get(server.url("/auth/me"), headers=bearer, timeout=30).json()
    assert (me["email"], me["email_verified"]) == ("ada@new.test", True)


def test_forgot_password_answers_alike_for_known_and_unknown_addresses(server, mailbox):
    known = [f"known{i}@example.com" for i in range(5)]
    for a in known:
        assert post(server, "/auth/register", {"email": a, "password": PASSWORD}).status_code == 201
    mailbox.wait(known[-1], 1)

    def ask(address: str, n: int) -> tuple[int, str, float]:
        headers = {"x-forwarded-for": f"198.51.100.{n}"}
        t = time.perf_counter()
        r = post(server, "/auth/password/forgot", {"email": address}, headers=headers)
        return r.status_code, r.text, time.perf_counter() - t

    known_t, unknown_t, answers = [], [], set()
    for i in range(20):  # alternated, so drift hits both alike
        s1, b1, t1 = ask(known[i % 5], 2 * i)
        s2, b2, t2 = ask(f"stranger{i}@example.com", 2 * i + 1)
        answers |= {(s1, b1), (s2, b2)}
        known_t.append(t1)
        unknown_t.append(t2)
    assert len(answers) == 1, answers
    assert next(iter(answers))[0] == 202
    med_k, med_u = statistics.median(known_t), statistics.median(unknown_t)
    print(f"forgot-password median: known {med_k * 1000:.1f} ms, unknown {med_u * 1000:.1f} ms")
    assert abs(med_k - med_u) < 0.015, (med_k, med_u)
    for a in known:
        mailbox.wait(a, 5)  # the welcome and four reset links
    assert not any(mailbox.to(f"stranger{i}@example.com") for i in range(20))


def test_a_reset_asked_while_the_mail_server_is_down_arrives_once_it_is_back(server, mailbox):
    assert post(server, "/auth/register", {"email": "bob@example.com", "password": PASSWORD}).status_code == 201
    mailbox.wait("bob@example.com", 1)
    mailbox.stop()
    assert post(server, "/auth/password/forgot", {"email": "bob@example.com"}).status_code == 202
    time.sleep(2)
    mailbox.start()
    got = mailbox.wait("bob@example.com", 2, timeout=30)
    time.sleep(5)
    assert len(mailbox.to("bob@example.com")) == 2, "exactly once"
    reset = link(got[1], "/reset-password")
    r = post(server, "/auth/password/reset", {"token": token_of(reset), "new_password": NEW_PASSWORD})
    assert r.status_code == 204
