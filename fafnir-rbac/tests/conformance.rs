//! fafnir-rbac against a real database: the same tests on SQLite and on Postgres.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use std::sync::Arc;
use std::time::Duration;

use fafnir_core::{Db, Permission, SharedClock, SystemClock, UserId};
use fafnir_rbac::{CheckCode, NewRole, Rbac, RbacError, RbacStore, RoleName, SqlRbacStore};

fn rn(s: &str) -> RoleName {
    RoleName::parse(s).unwrap()
}
fn p(s: &str) -> Permission {
    Permission::parse(s).unwrap()
}
fn store(db: &Db) -> Arc<dyn RbacStore> {
    let clock: SharedClock = Arc::new(SystemClock);
    Arc::new(SqlRbacStore::new(db.clone(), clock))
}
async fn rbac(db: &Db) -> Rbac {
    Rbac::new(store(db)).await.unwrap()
}
fn new_role(name: &str, perms: &[&str], inherits: &[&str]) -> NewRole {
    NewRole {
        name: rn(name),
        description: format!("{name} role"),
        permissions: perms.iter().map(|s| p(s)).collect(),
        inherits: inherits.iter().map(|s| rn(s)).collect(),
    }
}

async fn seeded_roles_and_new_users_get_member(db: Db) {
    let r = rbac(&db).await;
    let names: Vec<String> = r.roles().into_iter().map(|x| x.name.to_string()).collect();
    assert_eq!(names, ["admin", "member"]);
    let u = UserId::new();
    assert_eq!(r.check_str(&u, "profile:read").code, CheckCode::UserNotFound);
    r.ensure_user(u).await.unwrap();
    r.ensure_user(u).await.unwrap(); // idempotent
    assert_eq!(r.user_roles(&u), Some(vec![rn("member")]));
    assert_eq!(r.check_str(&u, "profile:write").code, CheckCode::PermissionGranted);
    assert_eq!(r.check_str(&u, "users:read").code, CheckCode::PermissionDenied);
    assert_eq!(r.check_str(&u, "not a permission").code, CheckCode::InvalidPermission);
    // A redelivered "user created" does not restore a revoked default role.
    assert!(r.revoke(u, &rn("member")).await.unwrap());
    r.ensure_user(u).await.unwrap();
    assert_eq!(r.user_roles(&u), Some(vec![]));
}

async fn admin_has_everything_and_batch_checks(db: Db) {
    let r = rbac(&db).await;
    let u = UserId::new();
    r.ensure_user(u).await.unwrap();
    assert!(r.grant(u, &rn("admin")).await.unwrap());
    assert!(!r.grant(u, &rn("admin")).await.unwrap());
    let d = r.check_many(&u, &["users:read", "roles:manage", "*:*", "bad"]);
    let codes: Vec<CheckCode> = d.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        [
            CheckCode::PermissionGranted,
            CheckCode::PermissionGranted,
            CheckCode::PermissionGranted,
            CheckCode::InvalidPermission
        ]
    );
    let perms = r.user_permissions(&u).unwrap();
    assert!(perms.contains(&p("*:*")) && perms.contains(&p("profile:read")));
}

async fn grants_need_known_users_and_roles(db: Db) {
    let r = rbac(&db).await;
    let ghost = UserId::new();
    assert!(matches!(r.grant(ghost, &rn("admin")).await, Err(RbacError::UserNotFound(_))));
    let u = UserId::new();
    r.ensure_user(u).await.unwrap();
    assert!(matches!(r.grant(u, &rn("nope")).await, Err(RbacError::RoleNotFound(_))));
    assert!(matches!(r.revoke(u, &rn("nope")).await, Err(RbacError::RoleNotFound(_))));
    assert!(!r.revoke(u, &rn("admin")).await.unwrap());
    r.remove_user(u).await.unwrap();
    assert_eq!(r.check_str(&u, "profile:read").code, CheckCode::UserNotFound);
    assert_eq!(store(&db).user_roles(u).await.unwrap(), None);
}

async fn inheritance_wildcards_and_cycles(db: Db) {
    let r = rbac(&db).await;
    r.create_role(new_role("viewer", &["docs:read"], &[])).await.unwrap();
    r.create_role(new_role("editor", &["docs:write", "images:*"], &["viewer"])).await.unwrap();
    r.create_role(new_role("chief", &["*:publish"], &["editor"])).await.unwrap();
    assert!(matches!(r.create_role(new_role("viewer", &[], &[])).await, Err(RbacError::RoleExists(_))));
    assert!(matches!(r.create_role(new_role("x", &[], &["ghost"])).await, Err(RbacError::RoleNotFound(_))));
    assert!(matches!(r.create_role(new_role("selfish", &[], &["selfish"])).await, Err(RbacError::Cycle(..))));

    let u = UserId::new();
    r.ensure_user(u).await.unwrap();
    r.grant(u, &rn("chief")).await.unwrap();
    for yes in ["docs:read", "docs:write", "images:upload", "blog:publish", "profile:read"] {
        assert!(r.check_str(&u, yes).allowed, "{yes}");
    }
    for no in ["docs:delete", "users:read", "*:*"] {
        assert!(!r.check_str(&u, no).allowed, "{no}");
    }
    // viewer -> chief would close viewer -> chief -> editor -> viewer.
    let err = r.set_role_parents(&rn("viewer"), vec![rn("chief")]).await.unwrap_err();
    assert!(matches!(err, RbacError::Cycle(..)), "{err}");
    assert!(err.to_string().contains("viewer -> chief -> editor -> viewer"), "{err}");
    assert!(r.role(&rn("viewer")).unwrap().inherits.is_empty(), "a refused write changes nothing");

    // Changing a parent's permissions reaches every descendant.
    r.set_role_permissions(&rn("viewer"), vec![p("docs:read"), p("docs:comment")]).await.unwrap();
    assert!(r.check_str(&u, "docs:comment").allowed);
    // Deleting a role removes its grants and its place in the graph; built-ins stay.
    assert!(matches!(r.delete_role(&rn("admin")).await, Err(RbacError::BuiltinRole(_))));
    assert!(matches!(r.delete_role(&rn("ghost")).await, Err(RbacError::RoleNotFound(_))));
    r.delete_role(&rn("editor")).await.unwrap();
    assert!(!r.check_str(&u, "docs:read").allowed);
    assert!(r.check_str(&u, "blog:publish").allowed);
}

/// Three instances on one database: a user registered through one is known to the others at
/// once (no wait for the policy watcher), by every check that goes through the traits.
async fn a_user_created_elsewhere_is_known_at_once(db: Db) {
    use fafnir_core::{PermissionChecker, RoleDirectory};
    let (a, b) = (rbac(&db).await, rbac(&db).await);
    let u = UserId::new();
    a.ensure_user(u).await.unwrap();
    assert_eq!(b.check_str(&u, "profile:write").code, CheckCode::UserNotFound, "B's snapshot predates the user");
    let d = PermissionChecker::check(&b, None, u, "profile:write").await.unwrap();
    assert!(d.allowed, "{d:?}");
    let c = rbac(&db).await;
    let v = UserId::new();
    a.ensure_user(v).await.unwrap();
    let grants = PermissionChecker::grants(&c, None, v).await.unwrap().unwrap();
    assert_eq!(grants.roles, ["member"]);
    let w = UserId::new();
    a.ensure_user(w).await.unwrap();
    let roles = RoleDirectory::roles_of(&c, None, &[w, UserId::new()]).await.unwrap();
    assert_eq!(roles.get(&w).map(Vec::as_slice), Some(&["member".to_owned()][..]));
    assert_eq!(roles.len(), 1, "an unknown id stays unknown");
    // Learning a user does not hide later writes: the watcher's reload still applies them.
    a.grant(u, &rn("admin")).await.unwrap();
    b.refresh().await.unwrap();
    assert!(b.check_str(&u, "users:delete").allowed);
}

async fn other_instances_notice_writes_within_the_watch_interval(db: Db) {
    let a = Arc::new(rbac(&db).await);
    let b = Arc::new(rbac(&db).await);
    let _watch = b.spawn_watcher(Duration::from_millis(50));
    let u = UserId::new();
    a.ensure_user(u).await.unwrap();
    a.grant(u, &rn("admin")).await.unwrap();
    let mut seen = false;
    for _ in 0..100 {
        if b.check_str(&u, "users:read").allowed {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen, "instance b never saw the grant made on instance a");
    // And b's own write on top of a's keeps both.
    b.create_role(new_role("auditor", &["audit:read"], &[])).await.unwrap();
    b.grant(u, &rn("auditor")).await.unwrap();
    a.refresh().await.unwrap();
    assert_eq!(a.user_roles(&u), Some(vec![rn("admin"), rn("auditor"), rn("member")]));
}

async fn concurrent_writes_from_two_instances_converge(db: Db) {
    let a = Arc::new(rbac(&db).await);
    let b = Arc::new(rbac(&db).await);
    let users: Vec<UserId> = (0..20).map(|_| UserId::new()).collect();
    let mut tasks = Vec::new();
    for (i, u) in users.iter().copied().enumerate() {
        let inst = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            inst.ensure_user(u).await?;
            inst.grant(u, &RoleName::parse("admin").unwrap()).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    a.refresh().await.unwrap();
    b.refresh().await.unwrap();
    assert_eq!(a.version(), b.version());
    for u in &users {
        assert!(a.check_str(u, "users:read").allowed && b.check_str(u, "users:read").allowed);
    }
}

/// Counts the store's per-user and batched lookups, forwarding everything.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn RbacStore>,
    single: std::sync::atomic::AtomicUsize,
    batched: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl RbacStore for Counting {
    async fn version(&self) -> Result<i64, RbacError> {
        self.inner.version().await
    }
    async fn load(&self) -> Result<fafnir_rbac::PolicyData, RbacError> {
        self.inner.load().await
    }
    async fn user_roles(&self, user: UserId) -> Result<Option<Vec<RoleName>>, RbacError> {
        self.single.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.user_roles(user).await
    }
    async fn users_roles(&self, users: &[UserId]) -> Result<Vec<(UserId, Vec<RoleName>)>, RbacError> {
        self.batched.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.users_roles(users).await
    }
    async fn ensure_user(&self, user: UserId, roles: &[RoleName]) -> Result<i64, RbacError> {
        self.inner.ensure_user(user, roles).await
    }
    async fn remove_user(&self, user: UserId) -> Result<i64, RbacError> {
        self.inner.remove_user(user).await
    }
    async fn create_role(&self, role: &NewRole) -> Result<i64, RbacError> {
        self.inner.create_role(role).await
    }
    async fn delete_role(&self, name: &RoleName) -> Result<i64, RbacError> {
        self.inner.delete_role(name).await
    }
    async fn set_role_permissions(&self, name: &RoleName, perms: &[Permission]) -> Result<i64, RbacError> {
        self.inner.set_role_permissions(name, perms).await
    }
    async fn set_role_parents(&self, name: &RoleName, parents: &[RoleName]) -> Result<i64, RbacError> {
        self.inner.set_role_parents(name, parents).await
    }
    async fn grant(&self, user: UserId, role: &RoleName) -> Result<(i64, bool), RbacError> {
        self.inner.grant(user, role).await
    }
    async fn revoke(&self, user: UserId, role: &RoleName) -> Result<(i64, bool), RbacError> {
        self.inner.revoke(user, role).await
    }
}

/// Users another instance created (a page of the directory, more than one statement's worth)
/// are learnt in batched lookups, with exactly the roles one lookup each would give.
async fn many_unknown_users_are_learnt_in_batches(db: Db) {
    let elsewhere = rbac(&db).await;
    let counting = Arc::new(Counting { inner: store(&db), single: Default::default(), batched: Default::default() });
    let here = Rbac::new(counting.clone()).await.unwrap();
    let users: Vec<UserId> = (0..150).map(|_| UserId::new()).collect();
    for (i, u) in users.iter().enumerate() {
        elsewhere.ensure_user(*u).await.unwrap();
        if i % 3 == 0 {
            elsewhere.grant(*u, &rn("admin")).await.unwrap();
        }
        if i % 5 == 0 {
            elsewhere.revoke(*u, &rn("member")).await.unwrap();
        }
    }
    let strangers: Vec<UserId> = (0..3).map(|_| UserId::new()).collect();
    let mut asked = users.clone();
    asked.extend(&strangers);
    here.learn(&asked).await.unwrap();
    assert_eq!(counting.single.load(std::sync::atomic::Ordering::SeqCst), 0, "no lookup per user");
    assert_eq!(counting.batched.load(std::sync::atomic::Ordering::SeqCst), 1);
    let direct = store(&db);
    for u in &users {
        assert_eq!(here.user_roles(u), direct.user_roles(*u).await.unwrap(), "{u}");
    }
    assert_eq!(here.user_roles(&users[0]), Some(vec![rn("admin")]), "granted admin, member revoked");
    assert_eq!(here.user_roles(&users[1]), Some(vec![rn("member")]));
    assert_eq!(here.user_roles(&users[5]), Some(vec![]), "member revoked, nothing else");
    for s in &strangers {
        assert_eq!(here.user_roles(s), None, "users no store knows stay unknown");
    }
}

fafnir_core::conformance_tests!(
    many_unknown_users_are_learnt_in_batches,
    a_user_created_elsewhere_is_known_at_once,
    seeded_roles_and_new_users_get_member,
    admin_has_everything_and_batch_checks,
    grants_need_known_users_and_roles,
    inheritance_wildcards_and_cycles,
    other_instances_notice_writes_within_the_watch_interval,
    concurrent_writes_from_two_instances_converge,
);
