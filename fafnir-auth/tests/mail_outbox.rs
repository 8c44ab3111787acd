//! Durable mail against a real SMTP conversation on loopback (fafnir_core::testing::smtp, a small SMTP server
//! which can be stopped, restarted and told to refuse a recipient) and a real database: the same
//! tests on SQLite and on Postgres.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use std::sync::Arc;
use std::time::Duration;

use fafnir_auth::mail::smtp::SmtpMailer;
use fafnir_auth::mail_outbox::{Pass, MAX_ATTEMPTS};
use fafnir_auth::{Mail, MailOutbox};
use fafnir_core::testing::smtp::SmtpServer;
use fafnir_core::{Db, Email, ManualClock, SharedClock};

struct Fixture {
    db: Db,
    clock: Arc<ManualClock>,
    outbox: MailOutbox,
}

fn fixture(db: &Db, port: u16) -> Fixture {
    let clock = ManualClock::new();
    let shared: SharedClock = clock.clone();
    let mailer = SmtpMailer::from_url(&format!("smtp://127.0.0.1:{port}"), "Fafnir <no-reply@fafnir.test>").unwrap();
    Fixture { db: db.clone(), clock, outbox: MailOutbox::new(db.clone(), shared, Arc::new(mailer)) }
}

fn mail(to: &str, link: &str) -> Mail {
    Mail {
        to: Email::parse(to).unwrap(),
        subject: "Reset your password".into(),
        text: format!("Open {link} to choose a new password.\n"),
        html: format!("<p><a href=\"{link}\">Choose a new password</a></p>"),
    }
}

async fn stored_bodies(db: &Db) -> Vec<String> {
    sqlx::query_scalar("SELECT body_text FROM mail_outbox").fetch_all(db.pool()).await.unwrap()
}

async fn a_message_is_sent_only_if_its_transaction_commits(db: Db) {
    let mut smtp = SmtpServer::start().await;
    let f = fixture(&db, smtp.port);
    let mut tx = f.db.pool().begin().await.unwrap();
    f.outbox.enqueue(&mut tx, &mail("gone@example.com", "https://x.test/r?t=rolled-back")).await.unwrap();
    tx.rollback().await.unwrap();
    let mut tx = f.db.pool().begin().await.unwrap();
    f.outbox.enqueue(&mut tx, &mail("ada@example.com", "https://x.test/r?t=secret-1")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(f.outbox.backlog().await.unwrap(), 1);
    assert_eq!(f.outbox.deliver_pending().await.unwrap(), Pass { sent: 1, retrying: 0, dead: 0 });
    assert_eq!(f.outbox.deliver_pending().await.unwrap(), Pass::default(), "sent once");
    let got = smtp.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "ada@example.com");
    assert!(got[0].1.contains("secret-1") && got[0].1.contains("Subject: Reset your password"), "{}", got[0].1);
    assert_eq!(stored_bodies(&f.db).await, [""], "the link is erased once sent");
    assert_eq!(f.outbox.backlog().await.unwrap(), 0);
    smtp.stop();
}

async fn nothing_is_lost_while_the_server_is_down_and_it_arrives_once(db: Db) {
    let mut smtp = SmtpServer::start().await;
    smtp.stopped().await;
    let f = fixture(&db, smtp.port);
    f.outbox.send_later(&mail("ada@example.com", "https://x.test/r?t=while-down")).await.unwrap();
    assert_eq!(f.outbox.deliver_pending().await.unwrap(), Pass { sent: 0, retrying: 1, dead: 0 });
    assert_eq!(f.outbox.deliver_pending().await.unwrap(), Pass::default(), "not due again before its backoff");
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(f.outbox.deliver_pending().await.unwrap().retrying, 1, "still down: retried later again");
    smtp.restart().await;
    f.clock.advance(Duration::from_secs(2));
    assert_eq!(f.outbox.deliver_pending().await.unwrap(), Pass { sent: 1, retrying: 0, dead: 0 });
    f.clock.advance(Duration::from_secs(3600));
    assert_eq!(f.outbox.deliver_pending().await.unwrap(), Pass::default());
    assert_eq!(smtp.received().len(), 1, "exactly once");
    smtp.stop();
}

async fn a_refused_recipient_is_dead_at_once_and_holds_back_nothing(db: Db) {
    let mut smtp = SmtpServer::start().await;
    smtp.refuse("nobody@example.com");
    let f = fixture(&db, smtp.port);
    f.outbox.send_later(&mail("nobody@example.com", "https://x.test/r?t=a")).await.unwrap();
    f.outbox.send_later(&mail("ada@example.com", "https://x.test/r?t=b")).await.unwrap();
    assert_eq!(f.outbox.deliver_pending().await.unwrap(), Pass { sent: 1, retrying: 0, dead: 1 });
    assert_eq!((f.outbox.dead().await.unwrap(), f.outbox.backlog().await.unwrap()), (1, 0));
    let error: Option<String> = sqlx::query_scalar("SELECT last_error FROM mail_outbox WHERE dead_at IS NOT NULL")
        .fetch_one(f.db.pool())
        .await
        .unwrap();
    assert!(error.unwrap().contains("550"), "the server's answer is kept for the operator");
    assert_eq!(stored_bodies(&f.db).await, ["", ""], "no link survives, sent or dead");
    smtp.stop();
}

async fn a_message_still_unsent_after_its_tries_is_dead(db: Db) {
    let mut smtp = SmtpServer::start().await;
    smtp.stop();
    let f = fixture(&db, smtp.port);
    f.outbox.send_later(&mail("ada@example.com", "https://x.test/r?t=never")).await.unwrap();
    let mut dead = 0;
    for _ in 0..MAX_ATTEMPTS {
        dead += f.outbox.deliver_pending().await.unwrap().dead;
        f.clock.advance(Duration::from_secs(600));
    }
    assert_eq!(dead, 1);
    assert_eq!(f.outbox.dead().await.unwrap(), 1);
    let attempts: i64 = sqlx::query_scalar("SELECT attempts FROM mail_outbox").fetch_one(f.db.pool()).await.unwrap();
    assert_eq!(attempts, MAX_ATTEMPTS);
}

async fn two_instances_send_each_message_once(db: Db) {
    let mut smtp = SmtpServer::start().await;
    let a = Arc::new(fixture(&db, smtp.port));
    let b_clock: SharedClock = a.clock.clone();
    let mailer = SmtpMailer::from_url(&format!("smtp://127.0.0.1:{}", smtp.port), "no-reply@fafnir.test").unwrap();
    let b = Arc::new(MailOutbox::new(db.clone(), b_clock, Arc::new(mailer)));
    for i in 0..10 {
        a.outbox.send_later(&mail(&format!("user{i}@example.com"), "https://x.test/r?t=x")).await.unwrap();
    }
    let (pa, pb) = tokio::join!(a.outbox.deliver_pending(), b.deliver_pending());
    assert_eq!(pa.unwrap().sent + pb.unwrap().sent, 10);
    let mut to: Vec<String> = smtp.received().into_iter().map(|(r, _)| r).collect();
    to.sort();
    to.dedup();
    assert_eq!((smtp.received().len(), to.len()), (10, 10), "each of the ten once");
    smtp.stop();
}

async fn refused_credentials_burn_no_message_and_end_the_pass(db: Db) {
    let mut smtp = SmtpServer::start().await;
    smtp.refuse_logins(true);
    let clock = ManualClock::new();
    let shared: SharedClock = clock.clone();
    let url = format!("smtp://mailer:wrong@127.0.0.1:{}", smtp.port);
    let mailer = SmtpMailer::from_url(&url, "no-reply@fafnir.test").unwrap();
    let outbox = MailOutbox::new(db.clone(), shared, Arc::new(mailer));
    for i in 0..3 {
        outbox.send_later(&mail(&format!("user{i}@example.com"), "https://x.test/r?t=x")).await.unwrap();
    }
    assert_eq!(outbox.deliver_pending().await.unwrap(), Pass { sent: 0, retrying: 1, dead: 0 }, "one try, then stop");
    let tried: Vec<i64> =
        sqlx::query_scalar("SELECT attempts FROM mail_outbox ORDER BY id").fetch_all(db.pool()).await.unwrap();
    assert_eq!(tried, [1, 0, 0], "the others were not spent on a setting that fails them all");
    assert_eq!(outbox.dead().await.unwrap(), 0);
    // The operator fixes the password (here: the server accepts again): everything goes out.
    smtp.refuse_logins(false);
    clock.advance(Duration::from_secs(5));
    assert_eq!(outbox.deliver_pending().await.unwrap().sent, 3);
    smtp.stop();
}

async fn a_message_leased_again_and_again_without_an_outcome_is_dead(db: Db) {
    let mut smtp = SmtpServer::start().await;
    let f = fixture(&db, smtp.port);
    f.outbox.send_later(&mail("ada@example.com", "https://x.test/r?t=crash")).await.unwrap();
    // As if dispatchers had died mid-send on every try: the count is at its limit.
    sqlx::query("UPDATE mail_outbox SET attempts = $1").bind(MAX_ATTEMPTS).execute(f.db.pool()).await.unwrap();
    assert_eq!(f.outbox.deliver_pending().await.unwrap(), Pass { sent: 0, retrying: 0, dead: 1 });
    assert!(smtp.received().is_empty());
    assert_eq!(stored_bodies(&f.db).await, [""]);
    smtp.stop();
}

fafnir_core::conformance_tests!(
    refused_credentials_burn_no_message_and_end_the_pass,
    a_message_leased_again_and_again_without_an_outcome_is_dead,
    a_message_is_sent_only_if_its_transaction_commits,
    nothing_is_lost_while_the_server_is_down_and_it_arrives_once,
    a_refused_recipient_is_dead_at_once_and_holds_back_nothing,
    a_message_still_unsent_after_its_tries_is_dead,
    two_instances_send_each_message_once,
);
