"""Fixtures of the interop suite: the real `fafnir` binary on free loopback ports with a fresh
SQLite database, and the accounts the tests use.

The binary is `target/debug/fafnir` (build it with `cargo build -p fafnir-cli`), or `$FAFNIR_BIN`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import requests
from aiosmtpd.smtp import AuthResult, LoginPassword

REPO = Path(__file__).resolve().parents[2]
ISSUER = "https://interop.fafnir.test"
AUDIENCE = "fafnir"  # the default audience (not configurable by environment)
PASSWORD = "correct horse battery staple"
START_TIMEOUT = 60.0
SMTP_USER, SMTP_PASSWORD = "mailer", "s3cret!"
STOP_TIMEOUT = 30.0


def fafnir_bin() -> Path:
    path = Path(os.environ.get("FAFNIR_BIN") or REPO / "target" / "debug" / "fafnir")
    if not path.is_file():
        pytest.exit(f"{path} does not exist: run `cargo build -p fafnir-cli` or set FAFNIR_BIN", returncode=2)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Account:
    email: str
    password: str
    id: str
    token: str  # an access token from the password grant of /auth/token
    refresh_token: str


@dataclass
class Server:
    """One running `fafnir serve`."""

    name: str
    dir: Path
    db_path: Path
    http_port: int
    grpc_port: int
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def url(self, path: str) -> str:
        return self.base + path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAFNIR_")}
        env.update(
            FAFNIR_DATABASE_URL=f"sqlite://{self.db_path}",
            FAFNIR_HTTP_ADDR=f"127.0.0.1:{self.http_port}",
            FAFNIR_GRPC_ADDR=f"127.0.0.1:{self.grpc_port}",
            FAFNIR_COOKIE_SECURE="false",
            FAFNIR_ISSUER=ISSUER,
            FAFNIR_LOG="warn",
        )
        return env

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        """Runs the admin CLI on this server's database."""
        return subprocess.run(
            [str(fafnir_bin()), *args],
            input=stdin,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def create_user(self, email: str, password: str = PASSWORD, *roles: str) -> None:
        args = ["user", "create", "--email", email, "--password-stdin"]
        for r in roles:
            args += ["--role", r]
        out = self.cli(*args, stdin=password + "\n")
        assert out.returncode == 0, f"fafnir {' '.join(args)}: {out.stderr}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self) -> None:
        log = open(self.log_path, "wb")  # noqa: SIM115 (kept open for the child's lifetime)
        self.proc = subprocess.Popen(
            [str(fafnir_bin()), "serve"],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fafnir serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.url("/readyz"), timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError(f"fafnir serve was not ready within {START_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self) -> int:
        """SIGTERM, then the exit code (a clean shutdown is 0)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"fafnir did not stop within {STOP_TIMEOUT}s of SIGTERM") from None
        return self.proc.returncode


def new_server(tmp: Path, name: str) -> Server:
    d = tmp / name
    d.mkdir(parents=True, exist_ok=True)
    http_port = free_port()
    grpc_port = free_port()
    while grpc_port == http_port:
        grpc_port = free_port()
    return Server(name, d, d / "f.db", http_port, grpc_port, d / "fafnir.log")


def running(server: Server):
    """Starts `server`, yields it, stops it with SIGTERM and checks it exited 0."""
    server.start()
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0, f"fafnir serve exited {code} after SIGTERM:\n{server.log_tail()}"


def password_grant(server: Server, email: str, password: str = PASSWORD) -> dict:
    r = requests.post(
        server.url("/auth/token"),
        data={"grant_type": "password", "username": email, "password": password},
        timeout=30,
    )
    assert r.status_code == 200, f"password grant for {email}: {r.status_code} {r.text}"
    return r.json()


def me(server: Server, token: str) -> dict:
    r = requests.get(server.url("/auth/me"), headers={"authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def account(server: Server, email: str, password: str = PASSWORD) -> Account:
    tok = password_grant(server, email, password)
    return Account(email, password, me(server, tok["access_token"])["id"], tok["access_token"], tok["refresh_token"])


def register(server: Server, email: str, password: str = PASSWORD) -> Account:
    r = requests.post(server.url("/auth/register"), json={"email": email, "password": password}, timeout=30)
    assert r.status_code == 201, f"register {email}: {r.status_code} {r.text}"
    return account(server, email, password)


@pytest.fixture(scope="session")
def fafnir(tmp_path_factory) -> Server:
    """The server most tests talk to. The admin is created with the CLI before it starts."""
    server = new_server(tmp_path_factory.mktemp("fafnir"), "main")
    server.create_user("admin@interop.test", PASSWORD, "admin")
    yield from running(server)


@pytest.fixture(scope="session")
def admin(fafnir: Server) -> Account:
    return account(fafnir, "admin@interop.test")


@pytest.fixture(scope="session")
def alice(fafnir: Server) -> Account:
    """A user registered through `POST /auth/register`."""
    return register(fafnir, "alice@interop.test", "alice's long passphrase 42")


@pytest.fixture(scope="session")
def bob(fafnir: Server) -> Account:
    return register(fafnir, "bob@interop.test", "bob's quite long passphrase 7")


@pytest.fixture(scope="session")
def channel(fafnir: Server):
    ch = grpc.insecure_channel(fafnir.grpc_target)
    grpc.channel_ready_future(ch).result(timeout=30)
    yield ch
    ch.close()


def pytest_terminal_summary(terminalreporter):
    """Schemathesis's numbers, when it ran."""
    mod = __import__("sys").modules.get("test_openapi_schemathesis")
    for line in getattr(mod, "SUMMARY", []):
        terminalreporter.write_line(line)


class Inbox:
    """An aiosmtpd handler keeping every message; `refuse` recipients get a permanent 550."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refuse: set[str] = set()
        self.logins: list[str] = []

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        if ok:
            self.logins.append(mechanism)
        # `handled=False`: aiosmtpd then answers 535 itself.
        return AuthResult(success=ok, handled=False)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted for delivery"
