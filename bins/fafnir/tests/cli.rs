//! The admin CLI, as the real binary: create a user, grant admin, and see the grant take effect;
//! bad input exits non-zero with one line on stderr.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use std::io::Write;
use std::process::{Command, Output, Stdio};

use fafnir_core::Config;
use fafnir_server::Stack;

fn fafnir(db_url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fafnir"))
        .args(args)
        .env("FAFNIR_DATABASE_URL", db_url)
        .env("FAFNIR_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_one_line_error(out: &Output, needle: &str) {
    assert!(!out.status.success(), "should fail: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("error: ") && err.contains(needle), "{err:?}");
}

async fn check(url: &str, email: &str, permission: &str) -> bool {
    let stack = Stack::open(Config { database_url: url.into(), ..Config::default() }).await.unwrap();
    let user = stack.auth.user_by_email(email).await.unwrap();
    let allowed = stack.rbac.check_str(&user.id, permission).allowed;
    stack.db.close().await;
    allowed
}

async fn cli_creates_users_and_grants_roles(t: &fafnir_core::testing::TestDb) {
    let url = t.url.as_str();
    let out = fafnir(url, &["migrate"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "migrations applied");

    let out = fafnir(
        url,
        &["user", "create", "--email", "root@example.com", "--password-stdin"],
        Some("correct horse battery staple\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("created root@example.com ("));
    assert!(!check(url, "root@example.com", "users:read").await, "a new user is only a member");
    assert!(check(url, "root@example.com", "profile:read").await);

    let out = fafnir(url, &["role", "grant", "--email", "ROOT@example.com", "--role", "admin"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "granted admin to root@example.com");
    assert!(check(url, "root@example.com", "users:read").await, "admin passes an admin-only check");

    let out = fafnir(url, &["role", "revoke", "--email", "root@example.com", "--role", "admin"], None);
    assert!(out.status.success());
    assert!(!check(url, "root@example.com", "users:read").await);

    // A first admin in one step.
    let out = fafnir(
        url,
        &["user", "create", "--email", "boss@example.com", "--password-stdin", "--role", "admin"],
        Some("another long passphrase\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(check(url, "boss@example.com", "roles:manage").await);

    let out = fafnir(url, &["keys", "rotate"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("new signing key "));

    // Bad input: non-zero exit, one line, nothing changed.
    assert_one_line_error(
        &fafnir(url, &["role", "grant", "--email", "nobody@example.com", "--role", "admin"], None),
        "no account",
    );
    assert_one_line_error(
        &fafnir(url, &["role", "grant", "--email", "root@example.com", "--role", "Not A Role"], None),
        "invalid role",
    );
    assert_one_line_error(
        &fafnir(url, &["role", "grant", "--email", "root@example.com", "--role", "ghost"], None),
        "does not exist",
    );
    assert_one_line_error(
        &fafnir(
            url,
            &["user", "create", "--email", "root@example.com", "--password-stdin"],
            Some("yet another passphrase\n"),
        ),
        "already exists",
    );
    assert_one_line_error(
        &fafnir(url, &["user", "create", "--email", "weak@example.com", "--password-stdin"], Some("password1\n")),
        "password",
    );
    assert_one_line_error(
        &fafnir(url, &["user", "create", "--email", "x@example.com", "--password-stdin"], Some("")),
        "no password",
    );
    assert_one_line_error(
        &fafnir(
            url,
            &["user", "create", "--email", "x@example.com", "--password-stdin", "--role", "ghost"],
            Some("correct horse battery staple\n"),
        ),
        "does not exist",
    );
    assert_one_line_error(&fafnir("mysql://root@localhost/x", &["migrate"], None), "unsupported database URL");
    let stack = Stack::open(Config { database_url: url.into(), ..Config::default() }).await.unwrap();
    assert!(stack.auth.user_by_email("x@example.com").await.is_err(), "failed creates left nothing");
    assert!(stack.auth.user_by_email("weak@example.com").await.is_err());
    stack.db.close().await;

    // Usage errors are clap's (exit 2), with help text available.
    let out = fafnir(url, &["role", "grant", "--email"], None);
    assert_eq!(out.status.code(), Some(2));
    let help = fafnir(url, &["--help"], None);
    assert!(text(&help.stdout).contains("user") && text(&help.stdout).contains("First admin"));
}

fafnir_core::conformance_tests!(@testdb cli_creates_users_and_grants_roles);
