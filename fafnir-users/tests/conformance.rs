//! fafnir-users against a real database: the same tests on SQLite and on Postgres.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use std::collections::HashSet;
use std::sync::Arc;

use fafnir_core::events::{AccountEvent, AccountEventHandler};
use fafnir_core::{Db, SharedClock, SystemClock, UserId};
use fafnir_users::{ProfileEvents, ProfileUpdate, Profiles, SqlProfileStore, UsersError};

fn profiles(db: &Db) -> Profiles {
    let clock: SharedClock = Arc::new(SystemClock);
    Profiles::new(Arc::new(SqlProfileStore::new(db.clone(), clock)))
}

async fn create_get_update_delete(db: Db) {
    let p = profiles(&db);
    let u = UserId::new();
    assert!(matches!(p.get(u).await, Err(UsersError::NotFound)));
    p.create(u, Some(" Ada ")).await.unwrap();
    p.create(u, Some("Other")).await.unwrap(); // idempotent: keeps the first
    let got = p.get(u).await.unwrap();
    assert_eq!(got.display_name.as_deref(), Some("Ada"));
    assert_eq!(got.bio, None);

    let upd: ProfileUpdate = serde_json::from_str(
        r#"{"first_name":"Ada","last_name":"Lovelace","bio":"Analyst\nof engines","locale":"en-GB","timezone":"Europe/London","avatar_url":"https://img.example.com/ada.png"}"#,
    )
    .unwrap();
    let after = p.update(u, &upd).await.unwrap();
    assert_eq!(after.last_name.as_deref(), Some("Lovelace"));
    assert_eq!(after.display_name.as_deref(), Some("Ada"), "fields left out are unchanged");
    assert!(after.updated_at >= got.updated_at);

    // An invalid field refuses the whole update and changes nothing.
    let bad: ProfileUpdate =
        serde_json::from_str(r#"{"first_name":"Grace","avatar_url":"javascript:alert(1)"}"#).unwrap();
    assert!(matches!(p.update(u, &bad).await, Err(UsersError::Validation(e)) if e.len() == 1));
    assert_eq!(p.get(u).await.unwrap().first_name.as_deref(), Some("Ada"));

    // null and "" clear.
    let clear: ProfileUpdate = serde_json::from_str(r#"{"bio":null,"locale":""}"#).unwrap();
    let cleared = p.update(u, &clear).await.unwrap();
    assert_eq!((cleared.bio, cleared.locale), (None, None));

    assert!(matches!(p.update(UserId::new(), &upd).await, Err(UsersError::NotFound)));
    p.delete(u).await.unwrap();
    assert!(matches!(p.delete(u).await, Err(UsersError::NotFound)));
}

async fn cursor_pagination_visits_everyone_once(db: Db) {
    let p = profiles(&db);
    let mut ids = Vec::new();
    for _ in 0..23 {
        let u = UserId::new();
        p.create(u, None).await.unwrap();
        ids.push(u);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = p.list(Some(10), cursor.as_deref()).await.unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|x| x.user_id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "creation order, each once");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 23);
    for bad in ["", "!!!", "djE6bm90LWEtdXVpZA", &"A".repeat(500)] {
        assert!(matches!(p.list(None, Some(bad)).await, Err(UsersError::InvalidCursor)), "{bad:?}");
    }
    assert!(matches!(p.list(Some(0), None).await, Err(UsersError::InvalidPageSize)));
    assert!(matches!(p.list(Some(101), None).await, Err(UsersError::InvalidPageSize)));
}

async fn events_create_and_remove_profiles_idempotently(db: Db) {
    let h = ProfileEvents(profiles(&db));
    let u = UserId::new();
    let created = AccountEvent::UserCreated { user_id: u, display_name: Some("bad\0name".into()) };
    h.handle(&created).await.unwrap();
    h.handle(&created).await.unwrap();
    assert_eq!(profiles(&db).get(u).await.unwrap().display_name, None);
    let deleted = AccountEvent::UserDeleted { user_id: u };
    h.handle(&deleted).await.unwrap();
    h.handle(&deleted).await.unwrap();
    assert!(profiles(&db).get(u).await.is_err());
}

fafnir_core::conformance_tests!(
    create_get_update_delete,
    cursor_pagination_visits_everyone_once,
    events_create_and_remove_profiles_idempotently,
);
