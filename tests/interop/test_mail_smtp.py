"""`fafnir mail test` against a real SMTP server on loopback (aiosmtpd, started here): the
message arrives as a multipart plain-text + HTML mail from FAFNIR_MAIL_FROM; credentials in the
URL never reach the output; a server that is down, a rejected recipient, a malformed address
and a malformed URL are clear errors with a failing exit status.
"""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from conftest import Inbox, fafnir_bin, free_port


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = free_port()
    # Plain SMTP on loopback, as a development mail catcher: STARTTLS is used only if offered.
    # AUTH offered without TLS, as a local catcher may: Fafnir allows that on loopback only.
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate, auth_require_tls=False
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def mail_test(to: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("FAFNIR_")}
    full.update(
        {"FAFNIR_DATABASE_URL": f"sqlite://{tmp_path}/unused.db", "FAFNIR_LOG": "info", "NO_COLOR": "1", **env}
    )
    return subprocess.run(
        [str(fafnir_bin()), "mail", "test", "--to", to], env=full, capture_output=True, text=True, timeout=60
    )


def test_a_test_message_arrives_as_text_and_html(smtp, tmp_path):
    inbox, port = smtp
    r = mail_test(
        "ada@example.com",
        tmp_path,
        FAFNIR_SMTP_URL=f"smtp://mailer:s3cret%21@127.0.0.1:{port}",
        FAFNIR_MAIL_FROM="Fafnir Accounts <no-reply@fafnir.test>",
    )
    assert r.returncode == 0, r.stderr
    assert f"through SMTP at smtp://127.0.0.1:{port}" in r.stdout
    assert "s3cret" not in r.stdout + r.stderr, "the password never reaches the output"
    assert len(inbox.messages) == 1
    assert len(inbox.logins) == 1, "it signed in with the URL's credentials (the %21 decoded)"
    mail_from, rcpt, raw = inbox.messages[0]
    assert (mail_from, rcpt) == ("no-reply@fafnir.test", ["ada@example.com"])
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["From"] == "Fafnir Accounts <no-reply@fafnir.test>"
    assert msg["To"] == "ada@example.com"
    assert msg["Subject"] == "Fafnir test message"
    assert msg.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}
    assert "the mail settings work" in parts["text/plain"]
    assert "<p>This is a test message from Fafnir" in parts["text/html"]


def test_wrong_credentials_are_refused(smtp, tmp_path):
    inbox, port = smtp
    r = mail_test("ada@example.com", tmp_path, FAFNIR_SMTP_URL=f"smtp://mailer:wrong@127.0.0.1:{port}")
    assert r.returncode != 0
    # The settings' fault (an outbox retries it and stops its pass), with the server's answer.
    assert "mail configuration" in r.stderr and "535" in r.stderr, r.stderr
    assert inbox.messages == []


def test_a_server_that_is_down_is_a_clear_failure(tmp_path):
    r = mail_test("ada@example.com", tmp_path, FAFNIR_SMTP_URL=f"smtp://127.0.0.1:{free_port()}")
    assert r.returncode != 0
    assert "the mail server is unavailable" in r.stderr, r.stderr


def test_a_refused_recipient_is_a_permanent_failure(smtp, tmp_path):
    inbox, port = smtp
    inbox.refuse.add("nobody@example.com")
    r = mail_test("nobody@example.com", tmp_path, FAFNIR_SMTP_URL=f"smtp://127.0.0.1:{port}")
    assert r.returncode != 0
    assert "the mail server refused the message" in r.stderr, r.stderr
    assert inbox.messages == []


@pytest.mark.parametrize(
    "to, url, expected",
    [
        ("ada@example.com\r\nBcc: eve@example.com", None, "--to:"),
        ("not-an-address", None, "--to:"),
        ("ada@example.com", "http://127.0.0.1:25", "must start with smtp:// or smtps://"),
        ("ada@example.com", "smtp://", "FAFNIR_SMTP_URL"),
        ("ada@example.com", "smtp://mailer:12/34@127.0.0.1:2525", "nothing after the port"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(smtp, tmp_path, to, url, expected):
    inbox, port = smtp
    r = mail_test(to, tmp_path, FAFNIR_SMTP_URL=url or f"smtp://127.0.0.1:{port}")
    assert r.returncode != 0
    assert expected in r.stderr, r.stderr
    assert inbox.messages == []


def test_without_smtp_the_message_goes_to_the_log(tmp_path):
    r = mail_test("ada@example.com", tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "mail not sent (no FAFNIR_SMTP_URL)" in out
    assert "the mail settings work" in out
    assert "through the log" in r.stdout
