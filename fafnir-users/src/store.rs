//! Profile storage: the trait and its sqlx implementation (SQLite and Postgres).

use async_trait::async_trait;
use fafnir_core::clock::from_ms;
use fafnir_core::{CoreError, Db, SharedClock, UserId};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::profile::Profile;
use crate::UsersError;

#[async_trait]
pub trait ProfileStore: Send + Sync + std::fmt::Debug {
    async fn get(&self, user: UserId) -> Result<Option<Profile>, UsersError>;
    /// Creates an empty profile (idempotent: an existing profile is left as it is).
    async fn create(&self, user: UserId, display_name: Option<&str>) -> Result<(), UsersError>;
    /// Sets the given columns; `None` if there is no such profile.
    async fn update(
        &self,
        user: UserId,
        columns: &[(&'static str, Option<String>)],
    ) -> Result<Option<Profile>, UsersError>;
    /// `false` if there was no such profile.
    async fn delete(&self, user: UserId) -> Result<bool, UsersError>;
    /// Up to `limit` profiles with ids greater than `after`, in id (= creation) order.
    async fn list(&self, after: Option<UserId>, limit: u32) -> Result<Vec<Profile>, UsersError>;
}

#[derive(Debug, Clone)]
pub struct SqlProfileStore {
    db: Db,
    clock: SharedClock,
}

impl SqlProfileStore {
    pub fn new(db: Db, clock: SharedClock) -> Self {
        Self { db, clock }
    }
}

const SELECT: &str = "SELECT user_id, first_name, last_name, display_name, avatar_url, bio, locale, \
                      timezone, created_at, updated_at FROM profiles";

fn row_to_profile(row: &AnyRow) -> Result<Profile, UsersError> {
    let id: String = row.try_get("user_id")?;
    Ok(Profile {
        user_id: UserId::parse(&id).map_err(|_| CoreError::Corrupt("bad user id in profiles".into()))?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        display_name: row.try_get("display_name")?,
        avatar_url: row.try_get("avatar_url")?,
        bio: row.try_get("bio")?,
        locale: row.try_get("locale")?,
        timezone: row.try_get("timezone")?,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
    })
}

#[async_trait]
impl ProfileStore for SqlProfileStore {
    async fn get(&self, user: UserId) -> Result<Option<Profile>, UsersError> {
        let row = sqlx::query(&format!("{SELECT} WHERE user_id = $1"))
            .bind(user.to_string())
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(row_to_profile).transpose()
    }

    async fn create(&self, user: UserId, display_name: Option<&str>) -> Result<(), UsersError> {
        let now = self.clock.now_ms();
        sqlx::query(
            "INSERT INTO profiles (user_id, display_name, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(user.to_string())
        .bind(display_name)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    async fn update(
        &self,
        user: UserId,
        columns: &[(&'static str, Option<String>)],
    ) -> Result<Option<Profile>, UsersError> {
        // Column names come from the fixed list in `profile::COLUMNS`, never from input.
        let mut sql = String::from("UPDATE profiles SET updated_at = $2");
        for (i, (col, _)) in columns.iter().enumerate() {
            debug_assert!(crate::profile::COLUMNS.contains(col));
            sql.push_str(&format!(", {col} = ${}", i + 3));
        }
        sql.push_str(" WHERE user_id = $1");
        let mut q = sqlx::query(&sql).bind(user.to_string()).bind(self.clock.now_ms());
        for (_, v) in columns {
            q = q.bind(v.clone());
        }
        if q.execute(self.db.pool()).await?.rows_affected() == 0 {
            return Ok(None);
        }
        self.get(user).await
    }

    async fn delete(&self, user: UserId) -> Result<bool, UsersError> {
        let n = sqlx::query("DELETE FROM profiles WHERE user_id = $1")
            .bind(user.to_string())
            .execute(self.db.pool())
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn list(&self, after: Option<UserId>, limit: u32) -> Result<Vec<Profile>, UsersError> {
        let after = after.map(|u| u.to_string()).unwrap_or_default();
        let rows = sqlx::query(&format!("{SELECT} WHERE user_id > $1 ORDER BY user_id LIMIT $2"))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(row_to_profile).collect()
    }
}
