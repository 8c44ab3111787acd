"""Test 6: Schemathesis (4.x, its CLI) against `/openapi.json` of a running server. Any 5xx
fails, and so does any answer the document does not describe: its status code, content type,
headers or body schema.

The fuzzer gets a server of its own: what it does (hundreds of failed logins and registrations
from one address, which are throttled) must not leak into the other tests. The run is bounded
and repeatable: a fixed seed, at most MAX_EXAMPLES generated cases per operation, one worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PASSWORD, new_server, password_grant, running

HERE = Path(__file__).resolve().parent
SEED = 20240607
MAX_EXAMPLES = 100
LOGOUT_POOL = 40
ADMIN_POOL = 40
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]
# Filled in for the terminal summary (conftest.py prints it).
SUMMARY: list[str] = []


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    server = new_server(tmp_path_factory.mktemp("schemathesis"), "schemathesis")
    server.create_user("fuzz-admin@interop.test", PASSWORD, "admin")
    server.create_user("fuzz-sweeper@interop.test", PASSWORD)
    # The document's examples log in as ada@example.com: with her account, they succeed.
    server.create_user("ada@example.com", PASSWORD)
    yield from running(server)


def mint_tokens(server, path: Path) -> None:
    """The tokens schemathesis_hooks.py hands out, each a session of its own."""

    def grant(email):
        return password_grant(server, email)["access_token"]

    admin = [grant("fuzz-admin@interop.test") for _ in range(ADMIN_POOL)]
    logout = [grant("fuzz-admin@interop.test") for _ in range(LOGOUT_POOL)]
    sweeper = grant("fuzz-sweeper@interop.test")
    path.write_text(json.dumps({"base": server.base, "admin": admin, "logout": logout, "logout_all": sweeper}))


def test_openapi_document_holds_under_schemathesis(fuzz_server, tmp_path):
    tokens = tmp_path / "tokens.json"
    mint_tokens(fuzz_server, tokens)
    reports = tmp_path / "reports"
    cmd = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--no-color",
        "run",
        fuzz_server.url("/openapi.json"),
        "--url",
        fuzz_server.base,
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--continue-on-failure",
        "--report",
        "junit,json",
        "--report-dir",
        str(reports),
        "--suppress-health-check",
        "all",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        "FAFNIR_INTEROP_TOKENS": str(tokens),
    }
    start = time.monotonic()
    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    elapsed = time.monotonic() - start
    log = out.stdout + out.stderr
    (HERE.parent.parent / "target").mkdir(exist_ok=True)
    (HERE.parent.parent / "target" / "interop-schemathesis.log").write_text(log)
    SUMMARY.append(summarize(reports, elapsed))
    assert out.returncode == 0, f"schemathesis exited {out.returncode}:\n{log[-20000:]}"


def summarize(reports: Path, elapsed: float) -> str:
    report = next(reports.glob("json-*.json"), None)
    if report is None:
        return f"schemathesis: no report ({elapsed:.0f}s)"
    r = json.loads(report.read_text())
    failing = sorted({op for f in r["failures"] for op in f["operations"]})
    return (
        f"schemathesis: {r['operations']['tested']} operations, {r['test_cases']['generated']} test cases, "
        f"{r['test_cases']['unique_failures']} unique failures"
        + (f" ({', '.join(failing)})" if failing else "")
        + f"; seed {SEED}, at most {MAX_EXAMPLES} examples per operation and phase, {elapsed:.0f}s"
    )
