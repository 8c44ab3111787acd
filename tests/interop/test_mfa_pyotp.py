"""Second factors of a real `fafnir serve`, with the codes computed by pyotp (an independent
RFC 6238 implementation) from what the server shows: the otpauth URL parses as authenticator
apps parse it, a code confirms TOTP, the password grant then answers `mfa_required`, the step-up
takes a code once and a recovery code once, and `fafnir user mfa reset` clears it all.
"""

from __future__ import annotations

import time

import pyotp
import requests

from conftest import PASSWORD, register


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def grant(fafnir, email: str) -> requests.Response:
    return requests.post(
        fafnir.url("/auth/token"),
        data={"grant_type": "password", "username": email, "password": PASSWORD},
        timeout=30,
    )


def verify(fafnir, mfa_token: str, **factor: str) -> requests.Response:
    return requests.post(fafnir.url("/auth/mfa/verify"), json={"mfa_token": mfa_token, **factor}, timeout=30)


def wait_for_fresh_step(margin: int = 5) -> None:
    while 30 - int(time.time()) % 30 < margin:
        time.sleep(0.2)


def test_totp_with_pyotp(fafnir):
    email = "otp-user@example.com"
    acct = register(fafnir, email)

    setup = requests.post(fafnir.url("/auth/mfa/totp/setup"), headers=bearer(acct.token), timeout=30)
    assert setup.status_code == 200, setup.text
    body = setup.json()
    parsed = pyotp.parse_uri(body["otpauth_url"])
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.secret == body["secret"] and parsed.digits == 6 and parsed.interval == 30
    assert parsed.name == email and parsed.issuer == "Fafnir"
    otp = pyotp.TOTP(body["secret"])

    wait_for_fresh_step()
    confirmed = requests.post(
        fafnir.url("/auth/mfa/totp/confirm"), json={"code": otp.now()}, headers=bearer(acct.token), timeout=30
    )
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10

    # The password grant no longer gives tokens: 401 mfa_required, with the challenge.
    held = grant(fafnir, email)
    assert held.status_code == 401, held.text
    assert held.json()["error"] == "mfa_required"
    challenge = held.json()["mfa_token"]

    # The code that confirmed TOTP was used: refused. The next step's (one step of skew) works.
    assert verify(fafnir, challenge, code=otp.now()).json()["error"]["code"] == "INVALID_MFA_CODE"
    nxt = otp.at(time.time() + 30)
    done = verify(fafnir, challenge, code=nxt)
    assert done.status_code == 200, done.text
    tokens = done.json()
    assert tokens["token_type"] == "Bearer"
    me = requests.get(fafnir.url("/auth/me"), headers=bearer(tokens["access_token"]), timeout=30)
    assert me.status_code == 200 and me.json()["email"] == email

    # A recovery code works once.
    held = grant(fafnir, email).json()["mfa_token"]
    assert verify(fafnir, held, recovery_code=codes[0]).status_code == 200
    held = grant(fafnir, email).json()["mfa_token"]
    assert verify(fafnir, held, recovery_code=codes[0]).status_code == 401
    status = requests.get(fafnir.url("/auth/mfa"), headers=bearer(tokens["access_token"]), timeout=30).json()
    assert status == {"totp": True, "passkeys": 0, "recovery_codes_left": 9}

    # An administrator clears the second factors of someone who lost them.
    out = fafnir.cli("user", "mfa", "reset", "--email", email)
    assert out.returncode == 0, out.stderr
    assert "second factors cleared" in out.stdout
    assert grant(fafnir, email).status_code == 200
