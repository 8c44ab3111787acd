"""Test 3: the password hashes Fafnir stores are standard Argon2id PHC strings: argon2-cffi
verifies them, and Fafnir verifies (and upgrades) a hash argon2-cffi made — what an import from
another system needs."""

from __future__ import annotations

import sqlite3
import time

import argon2
import pytest
import requests
from conftest import register

OWASP = dict(time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16, type=argon2.Type.ID)


def stored_hash(fafnir, email: str) -> str:
    # Read-only, next to the running server (SQLite in WAL mode allows it).
    db = sqlite3.connect(f"file:{fafnir.db_path}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute("SELECT password_hash FROM users WHERE email = ?", (email,)).fetchone()
    finally:
        db.close()
    assert row, f"no row for {email}"
    return row[0]


def test_argon2_cffi_verifies_a_registered_users_hash(fafnir, alice):
    phc = stored_hash(fafnir, alice.email)
    assert phc.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), phc
    ph = argon2.PasswordHasher()
    assert ph.verify(phc, alice.password) is True
    with pytest.raises(argon2.exceptions.VerifyMismatchError):
        ph.verify(phc, alice.password + "!")


def test_argon2_cffi_parameters_of_the_stored_hash(fafnir, alice):
    phc = stored_hash(fafnir, alice.email)
    p = argon2.extract_parameters(phc)
    assert (p.type, p.version, p.memory_cost, p.time_cost, p.parallelism) == (argon2.Type.ID, 19, 19456, 2, 1)
    assert (p.salt_len, p.hash_len) == (16, 32)
    # argon2-cffi's own default is RFC 9106's low-memory profile (m=64 MiB, t=3, p=4), so it
    # would rehash; a hasher with OWASP's parameters, which Fafnir uses, would not.
    assert argon2.PasswordHasher().check_needs_rehash(phc) is True
    assert argon2.PasswordHasher(**OWASP).check_needs_rehash(phc) is False


def test_the_cli_admin_hash_is_argon2id_too(fafnir, admin):
    phc = stored_hash(fafnir, admin.email)
    assert phc.startswith("$argon2id$")
    assert argon2.PasswordHasher().verify(phc, admin.password)


def test_fafnir_accepts_an_argon2_cffi_hash_and_upgrades_it(fafnir):
    """A hash made elsewhere (argon2-cffi's default parameters) signs in, and is rehashed to
    Fafnir's parameters on that login."""
    user = register(fafnir, "imported@interop.test", "imported account passphrase 99")
    foreign = argon2.PasswordHasher().hash(user.password)
    assert foreign.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    db = sqlite3.connect(str(fafnir.db_path), timeout=10)
    try:
        with db:
            db.execute("UPDATE users SET password_hash = ? WHERE email = ?", (foreign, user.email))
    finally:
        db.close()
    r = requests.post(fafnir.url("/auth/login"), json={"email": user.email, "password": user.password}, timeout=30)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 10
    while (now := stored_hash(fafnir, user.email)) == foreign and time.monotonic() < deadline:
        time.sleep(0.1)
    assert now.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), now
    assert argon2.PasswordHasher().verify(now, user.password)
