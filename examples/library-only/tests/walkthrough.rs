//! The library-only example, run against SQLite and Postgres.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use fafnir_core::testing::TestDb;

async fn the_walkthrough_runs(t: &TestDb) {
    let lines = library_only::walkthrough(&t.url).await.unwrap();
    let text = lines.join("\n");
    assert!(text.contains("registered ada@example.com"), "{text}");
    assert!(text.contains("profile display name: Ada"), "{text}");
    assert!(text.contains("profile:read PermissionGranted, users:delete PermissionDenied"), "{text}");
    assert!(text.contains("after granting admin, users:delete PermissionGranted"), "{text}");
    assert!(text.contains("refreshed: same session true"), "{text}");
    assert!(text.ends_with("logged out: token refused true"), "{text}");
}

fafnir_core::conformance_tests!(@testdb the_walkthrough_runs);
