//! The walkthrough behind `main.rs`, as a function the test runs on SQLite and Postgres.

use fafnir::{ClientInfo, Config, Fafnir, RoleName};

/// Registers an account, logs in, checks permissions, makes the user an admin, rotates the
/// session and logs out — and says what happened, one line per step.
pub async fn walkthrough(database_url: &str) -> Result<Vec<String>, fafnir::Error> {
    let mut out = Vec::new();
    // One call: database, migrations, signing key, RBAC policy, profiles, outbox.
    let fafnir = Fafnir::open(Config { database_url: database_url.into(), ..Config::default() }).await?;
    // Event delivery (new accounts get the `member` role and a profile), key and policy refresh.
    let _background = fafnir.spawn_background();

    let password = "correct horse battery staple";
    let ada = fafnir.auth.register("ada@example.com", password, Some("Ada")).await?;
    out.push(format!("registered {} ({})", ada.email, ada.id));

    let client = ClientInfo { ip: Some("127.0.0.1".into()), user_agent: Some("library-only".into()) };
    let login = fafnir.auth.login("ada@example.com", password, &client).await?;
    let who = fafnir.auth.authenticate(login.access_token.expose()).await?;
    out.push(format!("logged in: session {}", who.session_id));

    let profile = fafnir.profiles.get(ada.id).await.map_err(|e| fafnir::Error::Other(e.to_string()))?;
    out.push(format!("profile display name: {}", profile.display_name.as_deref().unwrap_or("-")));

    let read = fafnir.rbac.check_str(&who.user_id, "profile:read");
    let delete = fafnir.rbac.check_str(&who.user_id, "users:delete");
    out.push(format!("profile:read {:?}, users:delete {:?}", read.code, delete.code));

    fafnir.rbac.grant(ada.id, &RoleName::parse("admin")?).await?;
    let delete = fafnir.rbac.check_str(&who.user_id, "users:delete");
    out.push(format!("after granting admin, users:delete {:?}", delete.code));

    let rotated = fafnir.auth.refresh(login.refresh_token.expose(), &client).await?;
    out.push(format!("refreshed: same session {}", rotated.session_id == login.session_id));

    fafnir.auth.logout(&who).await?;
    let refused = fafnir.auth.authenticate(rotated.access_token.expose()).await.is_err();
    out.push(format!("logged out: token refused {refused}"));
    fafnir.db.close().await;
    Ok(out)
}
