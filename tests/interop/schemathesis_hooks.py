"""Schemathesis hooks (loaded with SCHEMATHESIS_HOOKS=schemathesis_hooks): every request carries a
bearer token of an admin, so the authenticated operations are exercised past the 401.

The tokens are minted before the run (logins from the fuzzer's address are soon throttled) and
read from the JSON file named by FAFNIR_INTEROP_TOKENS:
  {"base": "http://…", "admin": ["…", …], "logout": ["…", …], "logout_all": "…"}
Some operations end sessions: the stateful phase lists the caller's sessions and deletes them
(`DELETE /auth/sessions/{id}`, its own included). So the admin tokens are a pool, and each case
gets the first one whose session is still alive. `/auth/logout` ends the session it is called
with: each call gets a session of its own while that pool lasts (then an ended one, which still
gets a documented answer). `/auth/logout-all` gets a token of another account, whose sessions
it may end without touching the admin's.
"""

from __future__ import annotations

import json
import os
import threading

import requests
import schemathesis

with open(os.environ["FAFNIR_INTEROP_TOKENS"]) as f:
    TOKENS = json.load(f)

_lock = threading.Lock()
_admin = list(TOKENS["admin"])
_logout_pool = list(TOKENS["logout"])
_last_logout = _logout_pool[-1]


def _alive(token: str) -> bool:
    r = requests.get(
        TOKENS["base"] + "/auth/me", params={"grants": "false"}, headers={"authorization": f"Bearer {token}"}, timeout=30
    )
    return r.status_code == 200


def _admin_token() -> str:
    with _lock:
        while len(_admin) > 1 and not _alive(_admin[0]):
            _admin.pop(0)
        return _admin[0]


def _logout_token() -> str:
    global _last_logout
    with _lock:
        if _logout_pool:
            _last_logout = _logout_pool.pop()
        return _last_logout


@schemathesis.auth(refresh_interval=None)
class FafnirBearer:
    def get(self, case, ctx):
        path = ctx.operation.path
        if path == "/auth/logout":
            return _logout_token()
        if path == "/auth/logout-all":
            return TOKENS["logout_all"]
        return _admin_token()

    def set(self, case, data, ctx):
        case.headers = dict(case.headers or {})
        case.headers["Authorization"] = f"Bearer {data}"
