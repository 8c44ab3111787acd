//! Storage of the policy: the trait, and its sqlx implementation for SQLite and Postgres.
//!
//! Every write runs in one transaction that starts by bumping `rbac_version`. That first write
//! serialises RBAC writers (SQLite takes its write lock, Postgres a row lock), which makes the
//! cycle check race-free, and tells other instances that their snapshot is stale.

use std::collections::HashMap;

use async_trait::async_trait;
use fafnir_core::error::is_unique_violation;
use fafnir_core::{Db, Permission, SharedClock, UserId};
use sqlx::{Any, Row, Transaction};

use crate::model::{NewRole, RbacError, Role, RoleName};
use crate::snapshot::{cycle_error, find_cycle, PolicyData};

/// Where the policy lives. Every write returns the new policy version.
#[async_trait]
pub trait RbacStore: Send + Sync + std::fmt::Debug {
    async fn version(&self) -> Result<i64, RbacError>;
    async fn load(&self) -> Result<PolicyData, RbacError>;
    /// The roles of one user, or `None` if the user is unknown.
    async fn user_roles(&self, user: UserId) -> Result<Option<Vec<RoleName>>, RbacError>;
    /// The directly granted roles of many users at once (unknown users are left out). The
    /// default asks [`RbacStore::user_roles`] for each; stores should answer in one round trip.
    async fn users_roles(&self, users: &[UserId]) -> Result<Vec<(UserId, Vec<RoleName>)>, RbacError> {
        let mut out = Vec::new();
        for u in users {
            if let Some(roles) = self.user_roles(*u).await? {
                out.push((*u, roles));
            }
        }
        Ok(out)
    }
    /// Makes the user known and grants `roles` (idempotent).
    async fn ensure_user(&self, user: UserId, roles: &[RoleName]) -> Result<i64, RbacError>;
    /// Forgets the user and their grants (idempotent).
    async fn remove_user(&self, user: UserId) -> Result<i64, RbacError>;
    async fn create_role(&self, role: &NewRole) -> Result<i64, RbacError>;
    async fn delete_role(&self, name: &RoleName) -> Result<i64, RbacError>;
    async fn set_role_permissions(&self, name: &RoleName, perms: &[Permission]) -> Result<i64, RbacError>;
    async fn set_role_parents(&self, name: &RoleName, parents: &[RoleName]) -> Result<i64, RbacError>;
    /// Grants a role; `Ok((version, false))` if the user already had it.
    async fn grant(&self, user: UserId, role: &RoleName) -> Result<(i64, bool), RbacError>;
    /// Revokes a role; `Ok((version, false))` if the user did not have it.
    async fn revoke(&self, user: UserId, role: &RoleName) -> Result<(i64, bool), RbacError>;
}

/// The sqlx store, for SQLite and Postgres alike.
#[derive(Debug, Clone)]
pub struct SqlRbacStore {
    db: Db,
    clock: SharedClock,
}

impl SqlRbacStore {
    pub fn new(db: Db, clock: SharedClock) -> Self {
        Self { db, clock }
    }

    async fn begin_write(&self) -> Result<(Transaction<'static, Any>, i64), RbacError> {
        let mut tx = self.db.pool().begin().await?;
        let v: i64 = sqlx::query_scalar("UPDATE rbac_version SET version = version + 1 WHERE id = 1 RETURNING version")
            .fetch_one(&mut *tx)
            .await?;
        Ok((tx, v))
    }
}

fn parse_role(s: String) -> Result<RoleName, RbacError> {
    RoleName::parse(&s)
        .map_err(|_| RbacError::Store(fafnir_core::CoreError::Corrupt(format!("bad role name in store: {s:?}"))))
}

fn parse_user(s: &str) -> Result<UserId, RbacError> {
    UserId::parse(s).map_err(|_| RbacError::Store(fafnir_core::CoreError::Corrupt("bad user id in store".into())))
}

async fn role_exists(tx: &mut Transaction<'static, Any>, name: &RoleName) -> Result<bool, RbacError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM roles WHERE name = $1")
        .bind(name.as_str())
        .fetch_one(&mut **tx)
        .await?;
    Ok(n > 0)
}

async fn user_exists(tx: &mut Transaction<'static, Any>, user: UserId) -> Result<bool, RbacError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rbac_users WHERE user_id = $1")
        .bind(user.to_string())
        .fetch_one(&mut **tx)
        .await?;
    Ok(n > 0)
}

async fn require_roles(tx: &mut Transaction<'static, Any>, names: &[RoleName]) -> Result<(), RbacError> {
    for n in names {
        if !role_exists(tx, n).await? {
            return Err(RbacError::RoleNotFound(n.clone()));
        }
    }
    Ok(())
}

async fn insert_parents(
    tx: &mut Transaction<'static, Any>,
    name: &RoleName,
    parents: &[RoleName],
) -> Result<(), RbacError> {
    for parent in parents {
        sqlx::query("INSERT INTO role_parents (role, parent) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name.as_str())
            .bind(parent.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn insert_permissions(
    tx: &mut Transaction<'static, Any>,
    name: &RoleName,
    perms: &[Permission],
) -> Result<(), RbacError> {
    for p in perms {
        sqlx::query("INSERT INTO role_permissions (role, permission) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name.as_str())
            .bind(p.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl RbacStore for SqlRbacStore {
    async fn version(&self) -> Result<i64, RbacError> {
        Ok(sqlx::query_scalar("SELECT version FROM rbac_version WHERE id = 1").fetch_one(self.db.pool()).await?)
    }

    async fn load(&self) -> Result<PolicyData, RbacError> {
        // One transaction so the version matches the rows (a consistent snapshot on Postgres
        // needs REPEATABLE READ; on SQLite a read transaction is already a snapshot).
        let mut tx = self.db.pool().begin().await?;
        if self.db.backend() == fafnir_core::Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
        }
        let version: i64 =
            sqlx::query_scalar("SELECT version FROM rbac_version WHERE id = 1").fetch_one(&mut *tx).await?;
        let mut roles: Vec<Role> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for row in sqlx::query("SELECT name, description, builtin FROM roles ORDER BY name").fetch_all(&mut *tx).await?
        {
            let name: String = row.try_get("name")?;
            index.insert(name.clone(), roles.len());
            roles.push(Role {
                name: parse_role(name)?,
                description: row.try_get("description")?,
                permissions: Vec::new(),
                inherits: Vec::new(),
                builtin: row.try_get::<i64, _>("builtin")? != 0,
            });
        }
        for row in sqlx::query("SELECT role, permission FROM role_permissions ORDER BY role, permission")
            .fetch_all(&mut *tx)
            .await?
        {
            let role: String = row.try_get("role")?;
            let perm: String = row.try_get("permission")?;
            if let (Some(&i), Ok(p)) = (index.get(&role), Permission::parse(&perm)) {
                roles[i].permissions.push(p);
            }
        }
        for row in
            sqlx::query("SELECT role, parent FROM role_parents ORDER BY role, parent").fetch_all(&mut *tx).await?
        {
            let role: String = row.try_get("role")?;
            let parent: String = row.try_get("parent")?;
            if let Some(&i) = index.get(&role) {
                roles[i].inherits.push(parse_role(parent)?);
            }
        }
        let mut users: HashMap<UserId, Vec<RoleName>> = HashMap::new();
        for row in sqlx::query("SELECT user_id FROM rbac_users").fetch_all(&mut *tx).await? {
            users.insert(parse_user(&row.try_get::<String, _>("user_id")?)?, Vec::new());
        }
        for row in sqlx::query("SELECT user_id, role FROM user_roles").fetch_all(&mut *tx).await? {
            let user = parse_user(&row.try_get::<String, _>("user_id")?)?;
            users.entry(user).or_default().push(parse_role(row.try_get("role")?)?);
        }
        tx.commit().await?;
        Ok(PolicyData { version, roles, users: users.into_iter().collect() })
    }

    async fn user_roles(&self, user: UserId) -> Result<Option<Vec<RoleName>>, RbacError> {
        let mut tx = self.db.pool().begin().await?;
        if !user_exists(&mut tx, user).await? {
            return Ok(None);
        }
        let rows = sqlx::query("SELECT role FROM user_roles WHERE user_id = $1 ORDER BY role")
            .bind(user.to_string())
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.into_iter().map(|r| parse_role(r.try_get("role")?)).collect::<Result<Vec<_>, _>>().map(Some)
    }

    async fn users_roles(&self, users: &[UserId]) -> Result<Vec<(UserId, Vec<RoleName>)>, RbacError> {
        let mut out = Vec::with_capacity(users.len());
        // Bounded statements: a caller may ask about any number of users.
        for chunk in users.chunks(100) {
            let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let mut tx = self.db.pool().begin().await?;
            let (known_sql, granted_sql) = (
                format!("SELECT user_id FROM rbac_users WHERE user_id IN ({list})"),
                format!("SELECT user_id, role FROM user_roles WHERE user_id IN ({list}) ORDER BY role"),
            );
            let mut known = sqlx::query(&known_sql);
            let mut granted = sqlx::query(&granted_sql);
            for u in chunk {
                known = known.bind(u.to_string());
                granted = granted.bind(u.to_string());
            }
            let known = known.fetch_all(&mut *tx).await?;
            let granted = granted.fetch_all(&mut *tx).await?;
            tx.commit().await?;
            let mut roles: std::collections::HashMap<String, Vec<RoleName>> = known
                .into_iter()
                .map(|r| Ok((r.try_get::<String, _>("user_id")?, Vec::new())))
                .collect::<Result<_, RbacError>>()?;
            for r in granted {
                let user: String = r.try_get("user_id")?;
                if let Some(list) = roles.get_mut(&user) {
                    list.push(parse_role(r.try_get("role")?)?);
                }
            }
            for u in chunk {
                if let Some(list) = roles.remove(&u.to_string()) {
                    out.push((*u, list));
                }
            }
        }
        Ok(out)
    }

    async fn ensure_user(&self, user: UserId, roles: &[RoleName]) -> Result<i64, RbacError> {
        let (mut tx, v) = self.begin_write().await?;
        let now = self.clock.now_ms();
        let inserted =
            sqlx::query("INSERT INTO rbac_users (user_id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(user.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        // Default roles are granted only when the user first appears: a redelivered
        // "user created" event must not restore a role an admin has since revoked.
        if inserted > 0 {
            for role in roles {
                if role_exists(&mut tx, role).await? {
                    sqlx::query(
                        "INSERT INTO user_roles (user_id, role, granted_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(user.to_string())
                    .bind(role.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    tracing::warn!(role = %role, "default role does not exist; not granted");
                }
            }
        }
        tx.commit().await?;
        Ok(v)
    }

    async fn remove_user(&self, user: UserId) -> Result<i64, RbacError> {
        let (mut tx, v) = self.begin_write().await?;
        sqlx::query("DELETE FROM user_roles WHERE user_id = $1").bind(user.to_string()).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM rbac_users WHERE user_id = $1").bind(user.to_string()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(v)
    }

    async fn create_role(&self, role: &NewRole) -> Result<i64, RbacError> {
        let (mut tx, v) = self.begin_write().await?;
        if role.inherits.contains(&role.name) {
            return Err(cycle_error(&role.name, &[role.name.clone(), role.name.clone()]));
        }
        require_roles(&mut tx, &role.inherits).await?;
        let res = sqlx::query("INSERT INTO roles (name, description, builtin, created_at) VALUES ($1, $2, 0, $3)")
            .bind(role.name.as_str())
            .bind(&role.description)
            .bind(self.clock.now_ms())
            .execute(&mut *tx)
            .await;
        match res {
            Err(e) if is_unique_violation(&e) => return Err(RbacError::RoleExists(role.name.clone())),
            other => other?,
        };
        insert_permissions(&mut tx, &role.name, &role.permissions).await?;
        // A new role has no children yet, so its parents cannot close a cycle.
        insert_parents(&mut tx, &role.name, &role.inherits).await?;
        tx.commit().await?;
        Ok(v)
    }

    async fn delete_role(&self, name: &RoleName) -> Result<i64, RbacError> {
        let (mut tx, v) = self.begin_write().await?;
        let builtin: Option<i64> = sqlx::query_scalar("SELECT builtin FROM roles WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        match builtin {
            None => return Err(RbacError::RoleNotFound(name.clone())),
            Some(1) => return Err(RbacError::BuiltinRole(name.clone())),
            Some(_) => {}
        }
        // Explicit deletes rather than relying on ON DELETE CASCADE being enabled.
        for sql in [
            "DELETE FROM user_roles WHERE role = $1",
            "DELETE FROM role_permissions WHERE role = $1",
            "DELETE FROM role_parents WHERE role = $1 OR parent = $1",
            "DELETE FROM roles WHERE name = $1",
        ] {
            sqlx::query(sql).bind(name.as_str()).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(v)
    }

    async fn set_role_permissions(&self, name: &RoleName, perms: &[Permission]) -> Result<i64, RbacError> {
        let (mut tx, v) = self.begin_write().await?;
        require_roles(&mut tx, std::slice::from_ref(name)).await?;
        sqlx::query("DELETE FROM role_permissions WHERE role = $1").bind(name.as_str()).execute(&mut *tx).await?;
        insert_permissions(&mut tx, name, perms).await?;
        tx.commit().await?;
        Ok(v)
    }

    async fn set_role_parents(&self, name: &RoleName, parents: &[RoleName]) -> Result<i64, RbacError> {
        let (mut tx, v) = self.begin_write().await?;
        require_roles(&mut tx, std::slice::from_ref(name)).await?;
        require_roles(&mut tx, parents).await?;
        let mut edges: HashMap<RoleName, Vec<RoleName>> = HashMap::new();
        for row in sqlx::query("SELECT role, parent FROM role_parents").fetch_all(&mut *tx).await? {
            let role = parse_role(row.try_get("role")?)?;
            edges.entry(role).or_default().push(parse_role(row.try_get("parent")?)?);
        }
        edges.insert(name.clone(), parents.to_vec());
        if let Some(path) = find_cycle(&edges, name) {
            return Err(cycle_error(name, &path));
        }
        sqlx::query("DELETE FROM role_parents WHERE role = $1").bind(name.as_str()).execute(&mut *tx).await?;
        insert_parents(&mut tx, name, parents).await?;
        tx.commit().await?;
        Ok(v)
    }

    async fn grant(&self, user: UserId, role: &RoleName) -> Result<(i64, bool), RbacError> {
        let (mut tx, v) = self.begin_write().await?;
        if !user_exists(&mut tx, user).await? {
            return Err(RbacError::UserNotFound(user));
        }
        require_roles(&mut tx, std::slice::from_ref(role)).await?;
        let n = sqlx::query(
            "INSERT INTO user_roles (user_id, role, granted_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(user.to_string())
        .bind(role.as_str())
        .bind(self.clock.now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok((v, n > 0))
    }

    async fn revoke(&self, user: UserId, role: &RoleName) -> Result<(i64, bool), RbacError> {
        let (mut tx, v) = self.begin_write().await?;
        if !user_exists(&mut tx, user).await? {
            return Err(RbacError::UserNotFound(user));
        }
        require_roles(&mut tx, std::slice::from_ref(role)).await?;
        let n = sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role = $2")
            .bind(user.to_string())
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok((v, n > 0))
    }
}
