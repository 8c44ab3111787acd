//! The RBAC service: writes go to the store, checks are answered from memory.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use fafnir_core::events::{AccountEvent, AccountEventHandler, HandlerError};
use fafnir_core::{Permission, UserId};
use tokio::sync::Mutex;

use crate::model::{Decision, NewRole, RbacError, Role, RoleName, MEMBER};
use crate::snapshot::Snapshot;
use crate::store::RbacStore;

/// How often a watcher looks for writes made by other instances: a grant or revocation made
/// elsewhere takes effect here within this time (plus one load).
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Roles, grants and permission checks.
///
/// `check` is answered from an immutable in-memory snapshot: one atomic load, one hash lookup
/// for the user and a few per role. Every write through this service updates the snapshot before
/// it returns (read-your-writes); writes by other instances are noticed by
/// [`Rbac::spawn_watcher`], which polls the policy version.
#[derive(Debug)]
pub struct Rbac {
    store: Arc<dyn RbacStore>,
    snapshot: ArcSwap<Snapshot>,
    default_roles: Vec<RoleName>,
    // Serialises local writers so that a patch is applied on top of the version it follows.
    write_lock: Mutex<()>,
    /// Where [`Rbac::grant_by`] and [`Rbac::revoke_by`] record role changes.
    audit: std::sync::OnceLock<fafnir_core::AuditLog>,
}

impl Rbac {
    /// Loads the policy. New users get `member`.
    pub async fn new(store: Arc<dyn RbacStore>) -> Result<Self, RbacError> {
        let member = RoleName::parse(MEMBER)?;
        Self::with_default_roles(store, vec![member]).await
    }

    pub async fn with_default_roles(
        store: Arc<dyn RbacStore>,
        default_roles: Vec<RoleName>,
    ) -> Result<Self, RbacError> {
        let data = store.load().await?;
        Ok(Self {
            store,
            snapshot: ArcSwap::from_pointee(Snapshot::build(data)),
            default_roles,
            write_lock: Mutex::new(()),
            audit: std::sync::OnceLock::new(),
        })
    }

    // ---- checks: memory only ----

    /// Whether `user` holds `permission`, with the contract's code.
    #[inline]
    pub fn check(&self, user: &UserId, permission: &Permission) -> Decision {
        self.snapshot.load().check(user, permission)
    }

    /// As [`Rbac::check`], parsing the permission (`INVALID_PERMISSION` when it does not parse).
    pub fn check_str(&self, user: &UserId, permission: &str) -> Decision {
        self.snapshot.load().check_str(user, permission)
    }

    /// Several checks against one consistent snapshot.
    pub fn check_many<S: AsRef<str>>(&self, user: &UserId, permissions: &[S]) -> Vec<Decision> {
        let snap = self.snapshot.load();
        permissions.iter().map(|p| snap.check_str(user, p.as_ref())).collect()
    }

    /// The user's roles, or `None` for an unknown user.
    pub fn user_roles(&self, user: &UserId) -> Option<Vec<RoleName>> {
        self.snapshot.load().role_names_of(user).map(<[RoleName]>::to_vec)
    }

    /// The user's effective permissions (inheritance resolved), or `None` for an unknown user.
    pub fn user_permissions(&self, user: &UserId) -> Option<Vec<Permission>> {
        self.snapshot.load().permissions_of(user)
    }

    pub fn roles(&self) -> Vec<Role> {
        self.snapshot.load().roles.values().map(|e| e.role.clone()).collect()
    }

    pub fn role(&self, name: &RoleName) -> Option<Role> {
        self.snapshot.load().roles.get(name).map(|e| e.role.clone())
    }

    /// The policy version the snapshot reflects.
    pub fn version(&self) -> i64 {
        self.snapshot.load().version
    }

    /// Makes sure the snapshot knows `users` that the store knows: a user registered through
    /// another instance (or whose account event this instance has not received yet) is read
    /// from the store at once instead of looking unknown until the next policy reload. Costs
    /// nothing when every user is known; one query per unknown user otherwise.
    pub async fn learn(&self, users: &[UserId]) -> Result<(), RbacError> {
        let unknown = |snap: &Snapshot| -> Vec<UserId> {
            users.iter().filter(|u| !snap.users.contains_key(u)).copied().collect()
        };
        let missing = unknown(&self.snapshot.load());
        if missing.is_empty() {
            return Ok(());
        }
        // Read before taking the write lock: a slow store must not hold up writers. One round
        // trip for all of them (a page of a hundred users is two queries, not a hundred).
        let found = self.store.users_roles(&missing).await?;
        if found.is_empty() {
            return Ok(());
        }
        let _g = self.write_lock.lock().await;
        // The same version: these users' rows are as current as the store was a moment ago; a
        // local write since then has patched or reloaded the snapshot (and is kept: users the
        // snapshot learnt meanwhile are skipped), and the watcher's next reload on a version
        // change rebuilds everything anyway.
        let current = self.snapshot.load();
        let mut next = current.patched();
        let mut changed = false;
        for (user, roles) in found {
            if !current.users.contains_key(&user) {
                next.set_user(user, roles);
                changed = true;
            }
        }
        if changed {
            self.snapshot.store(Arc::new(next));
        }
        Ok(())
    }

    // ---- writes: store first, then the snapshot ----

    pub async fn ensure_user(&self, user: UserId) -> Result<(), RbacError> {
        let _g = self.write_lock.lock().await;
        let v = self.store.ensure_user(user, &self.default_roles).await?;
        self.patch_user(v, user).await
    }

    pub async fn remove_user(&self, user: UserId) -> Result<(), RbacError> {
        let _g = self.write_lock.lock().await;
        let v = self.store.remove_user(user).await?;
        self.apply(v, |s| s.remove_user(&user)).await
    }

    /// Grants a role; `false` if the user already had it.
    pub async fn grant(&self, user: UserId, role: &RoleName) -> Result<bool, RbacError> {
        let _g = self.write_lock.lock().await;
        let (v, changed) = self.store.grant(user, role).await?;
        self.patch_user(v, user).await?;
        Ok(changed)
    }

    /// Records the role changes made through [`Rbac::grant_by`] and [`Rbac::revoke_by`] in
    /// `log` (set once; later calls are ignored).
    pub fn record_to(&self, log: fafnir_core::AuditLog) {
        let _ = self.audit.set(log);
    }

    /// [`Rbac::grant`] on behalf of `actor` (none: the system), audited when it changed
    /// something.
    pub async fn grant_by(&self, actor: Option<UserId>, user: UserId, role: &RoleName) -> Result<bool, RbacError> {
        let changed = self.grant(user, role).await?;
        self.audit_change(fafnir_core::AuditKind::RoleGranted, actor, user, role, changed);
        Ok(changed)
    }

    /// [`Rbac::revoke`] on behalf of `actor`, audited when it changed something.
    pub async fn revoke_by(&self, actor: Option<UserId>, user: UserId, role: &RoleName) -> Result<bool, RbacError> {
        let changed = self.revoke(user, role).await?;
        self.audit_change(fafnir_core::AuditKind::RoleRevoked, actor, user, role, changed);
        Ok(changed)
    }

    fn audit_change(
        &self,
        kind: fafnir_core::AuditKind,
        actor: Option<UserId>,
        user: UserId,
        role: &RoleName,
        changed: bool,
    ) {
        let (Some(log), true) = (self.audit.get(), changed) else { return };
        let mut ev = fafnir_core::AuditEvent::new(kind).subject(user).detail("role", role.as_str());
        if let Some(a) = actor {
            ev = ev.actor(a);
        }
        log.record(ev);
    }

    /// Revokes a role; `false` if the user did not have it.
    pub async fn revoke(&self, user: UserId, role: &RoleName) -> Result<bool, RbacError> {
        let _g = self.write_lock.lock().await;
        let (v, changed) = self.store.revoke(user, role).await?;
        self.patch_user(v, user).await?;
        Ok(changed)
    }

    pub async fn create_role(&self, role: NewRole) -> Result<(), RbacError> {
        let _g = self.write_lock.lock().await;
        self.store.create_role(&role).await?;
        self.reload().await
    }

    pub async fn delete_role(&self, name: &RoleName) -> Result<(), RbacError> {
        let _g = self.write_lock.lock().await;
        self.store.delete_role(name).await?;
        self.reload().await
    }

    pub async fn set_role_permissions(&self, name: &RoleName, permissions: Vec<Permission>) -> Result<(), RbacError> {
        let _g = self.write_lock.lock().await;
        self.store.set_role_permissions(name, &permissions).await?;
        self.reload().await
    }

    /// Replaces the roles `name` inherits from. Refused if it would close a cycle.
    pub async fn set_role_parents(&self, name: &RoleName, parents: Vec<RoleName>) -> Result<(), RbacError> {
        let _g = self.write_lock.lock().await;
        self.store.set_role_parents(name, &parents).await?;
        self.reload().await
    }

    /// Reloads the whole policy if another instance changed it since the snapshot was built.
    pub async fn refresh(&self) -> Result<bool, RbacError> {
        if self.store.version().await? == self.version() {
            return Ok(false);
        }
        let _g = self.write_lock.lock().await;
        self.reload().await?;
        Ok(true)
    }

    async fn reload(&self) -> Result<(), RbacError> {
        let data = self.store.load().await?;
        self.snapshot.store(Arc::new(Snapshot::build(data)));
        Ok(())
    }

    /// After a user-level write at version `v`: patch that user alone if `v` directly follows
    /// the snapshot, else (another instance wrote in between) reload everything.
    async fn patch_user(&self, v: i64, user: UserId) -> Result<(), RbacError> {
        let roles = self.store.user_roles(user).await?;
        self.apply(v, |s| match roles {
            Some(r) => s.set_user(user, r),
            None => s.remove_user(&user),
        })
        .await
    }

    async fn apply(&self, v: i64, patch: impl FnOnce(&mut Snapshot)) -> Result<(), RbacError> {
        let current = self.snapshot.load();
        if v == current.version + 1 {
            let mut next = current.patched();
            patch(&mut next);
            next.version = v;
            self.snapshot.store(Arc::new(next));
            Ok(())
        } else {
            self.reload().await
        }
    }

    /// Polls the policy version every `every` and reloads on change, until `self` is dropped.
    pub fn spawn_watcher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(rbac) = weak.upgrade() else { return };
                if let Err(e) = rbac.refresh().await {
                    tracing::warn!(error = %e, "RBAC policy refresh failed");
                }
            }
        })
    }
}

/// The in-process permission checker: answers from the snapshot, never fails.
#[async_trait::async_trait]
impl fafnir_core::PermissionChecker for Rbac {
    async fn check(
        &self,
        _bearer: Option<&str>,
        user: UserId,
        permission: &str,
    ) -> Result<Decision, fafnir_core::ServiceError> {
        self.learn(&[user]).await.map_err(directory_error)?;
        Ok(self.check_str(&user, permission))
    }

    async fn check_many(
        &self,
        _bearer: Option<&str>,
        user: UserId,
        permissions: &[String],
    ) -> Result<Vec<Decision>, fafnir_core::ServiceError> {
        self.learn(&[user]).await.map_err(directory_error)?;
        Ok(Rbac::check_many(self, &user, permissions))
    }

    async fn grants(
        &self,
        _bearer: Option<&str>,
        user: UserId,
    ) -> Result<Option<fafnir_core::Grants>, fafnir_core::ServiceError> {
        fn grants_of(set: &crate::snapshot::RoleSet) -> fafnir_core::Grants {
            fafnir_core::Grants {
                roles: set.names.iter().map(|r| r.to_string()).collect(),
                permissions: set.permission_names.clone(),
            }
        }
        // Known users (nearly every call) are answered from the snapshot at once, without
        // `learn` and without touching the shared count of their role set.
        if let Some(set) = self.snapshot.load().users.get(&user) {
            return Ok(Some(grants_of(set)));
        }
        self.learn(&[user]).await.map_err(directory_error)?;
        Ok(self.snapshot.load().users.get(&user).map(|set| grants_of(set)))
    }
}

fn directory_error(e: RbacError) -> fafnir_core::ServiceError {
    use fafnir_core::ServiceError;
    match e {
        RbacError::InvalidRoleName | RbacError::InvalidPermission(_) => ServiceError::InvalidArgument(e.to_string()),
        RbacError::RoleNotFound(_) | RbacError::UserNotFound(_) => ServiceError::NotFound(e.to_string()),
        RbacError::Store(inner) => {
            tracing::error!(error = %inner, "RBAC store failed");
            ServiceError::Unavailable("the policy store is unavailable".into())
        }
        other => ServiceError::Internal(other.to_string()),
    }
}

/// The in-process role directory. It checks nothing about the caller: see
/// [`fafnir_core::RoleDirectory`].
#[async_trait::async_trait]
impl fafnir_core::RoleDirectory for Rbac {
    async fn roles(&self, _bearer: Option<&str>) -> Result<Vec<fafnir_core::RoleInfo>, fafnir_core::ServiceError> {
        Ok(Rbac::roles(self)
            .into_iter()
            .map(|r| fafnir_core::RoleInfo {
                name: r.name.to_string(),
                description: r.description,
                permissions: r.permissions.iter().map(|p| p.to_string()).collect(),
                inherits: r.inherits.iter().map(|p| p.to_string()).collect(),
                builtin: r.builtin,
            })
            .collect())
    }

    async fn assign(
        &self,
        _bearer: Option<&str>,
        actor: UserId,
        user: UserId,
        role: &str,
    ) -> Result<bool, fafnir_core::ServiceError> {
        let role = RoleName::parse(role).map_err(directory_error)?;
        self.grant_by(Some(actor), user, &role).await.map_err(directory_error)
    }

    async fn revoke(
        &self,
        _bearer: Option<&str>,
        actor: UserId,
        user: UserId,
        role: &str,
    ) -> Result<bool, fafnir_core::ServiceError> {
        let role = RoleName::parse(role).map_err(directory_error)?;
        self.revoke_by(Some(actor), user, &role).await.map_err(directory_error)
    }

    async fn roles_of(
        &self,
        _bearer: Option<&str>,
        users: &[UserId],
    ) -> Result<std::collections::HashMap<UserId, Vec<String>>, fafnir_core::ServiceError> {
        if users.len() > fafnir_core::MAX_ROLES_BATCH {
            return Err(fafnir_core::ServiceError::InvalidArgument(format!(
                "at most {} users per call",
                fafnir_core::MAX_ROLES_BATCH
            )));
        }
        self.learn(users).await.map_err(directory_error)?;
        let snap = self.snapshot.load();
        Ok(users
            .iter()
            .filter_map(|u| snap.role_names_of(u).map(|r| (*u, r.iter().map(|r| r.to_string()).collect())))
            .collect())
    }
}

/// Delivers account events to RBAC: a new user becomes known with the default roles; a deleted
/// user is forgotten. Idempotent, as the outbox requires.
#[derive(Debug, Clone)]
pub struct RbacEvents(pub Arc<Rbac>);

pub const SUBSCRIBER: &str = "rbac";

#[async_trait::async_trait]
impl AccountEventHandler for RbacEvents {
    fn name(&self) -> &str {
        SUBSCRIBER
    }

    async fn handle(&self, event: &AccountEvent) -> Result<(), HandlerError> {
        let r = match event {
            AccountEvent::UserCreated { user_id, .. } => self.0.ensure_user(*user_id).await,
            AccountEvent::UserDeleted { user_id } => self.0.remove_user(*user_id).await,
        };
        r.map_err(|e| HandlerError(e.to_string()))
    }
}
