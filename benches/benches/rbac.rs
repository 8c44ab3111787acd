//! Permission checks on a policy of 10,000 users, 1,000 roles and 100 permissions.
//! Target: under 1 µs per check. Checks read only the in-memory snapshot.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use fafnir_core::{Permission, UserId};
use fafnir_rbac::{NewRole, PolicyData, Rbac, RbacError, RbacStore, Role, RoleName};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A store that only loads a generated policy: the check path never calls the store, so this
/// measures exactly what production checks do.
#[derive(Debug)]
struct Generated(std::sync::Mutex<Option<PolicyData>>);

fn unsupported() -> RbacError {
    RbacError::Store(fafnir_core::CoreError::Config("bench store is read-only".into()))
}

#[async_trait]
impl RbacStore for Generated {
    async fn version(&self) -> Result<i64, RbacError> {
        Ok(1)
    }
    async fn load(&self) -> Result<PolicyData, RbacError> {
        self.0.lock().unwrap().take().ok_or_else(unsupported)
    }
    async fn user_roles(&self, _: UserId) -> Result<Option<Vec<RoleName>>, RbacError> {
        Err(unsupported())
    }
    async fn ensure_user(&self, _: UserId, _: &[RoleName]) -> Result<i64, RbacError> {
        Err(unsupported())
    }
    async fn remove_user(&self, _: UserId) -> Result<i64, RbacError> {
        Err(unsupported())
    }
    async fn create_role(&self, _: &NewRole) -> Result<i64, RbacError> {
        Err(unsupported())
    }
    async fn delete_role(&self, _: &RoleName) -> Result<i64, RbacError> {
        Err(unsupported())
    }
    async fn set_role_permissions(&self, _: &RoleName, _: &[Permission]) -> Result<i64, RbacError> {
        Err(unsupported())
    }
    async fn set_role_parents(&self, _: &RoleName, _: &[RoleName]) -> Result<i64, RbacError> {
        Err(unsupported())
    }
    async fn grant(&self, _: UserId, _: &RoleName) -> Result<(i64, bool), RbacError> {
        Err(unsupported())
    }
    async fn revoke(&self, _: UserId, _: &RoleName) -> Result<(i64, bool), RbacError> {
        Err(unsupported())
    }
}

/// 100 permissions (20 resources × 5 actions), 1,000 roles of 5 permissions each inheriting
/// from up to two earlier roles, 10,000 users of 1–3 roles each.
fn policy(rng: &mut StdRng) -> (PolicyData, Vec<UserId>, Vec<Permission>) {
    let perms: Vec<Permission> =
        (0..20).flat_map(|r| (0..5).map(move |a| Permission::parse(&format!("res{r}:act{a}")).unwrap())).collect();
    let names: Vec<RoleName> = (0..1000).map(|i| RoleName::parse(&format!("role{i}")).unwrap()).collect();
    let roles = (0..1000)
        .map(|i| Role {
            name: names[i].clone(),
            description: String::new(),
            permissions: (0..5).map(|_| perms[rng.gen_range(0..perms.len())].clone()).collect(),
            inherits: if i > 0 {
                (0..rng.gen_range(0..=2)).map(|_| names[rng.gen_range(0..i)].clone()).collect()
            } else {
                vec![]
            },
            builtin: false,
        })
        .collect();
    let users: Vec<UserId> = (0..10_000).map(|_| UserId::new()).collect();
    let grants = users
        .iter()
        .map(|u| (*u, (0..rng.gen_range(1..=3)).map(|_| names[rng.gen_range(0..1000)].clone()).collect()))
        .collect();
    (PolicyData { version: 1, roles, users: grants }, users, perms)
}

fn rbac(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let (data, users, perms) = policy(&mut rng);
    let rbac = rt.block_on(Rbac::new(Arc::new(Generated(std::sync::Mutex::new(Some(data)))))).unwrap();
    // Pre-drawn (user, permission) pairs, so the loop measures the check, not the RNG.
    let pairs: Vec<(UserId, Permission)> = (0..4096)
        .map(|_| (users[rng.gen_range(0..users.len())], perms[rng.gen_range(0..perms.len())].clone()))
        .collect();
    let strings: Vec<(UserId, String)> = pairs.iter().map(|(u, p)| (*u, p.to_string())).collect();
    let granted = pairs.iter().filter(|(u, p)| rbac.check(u, p).allowed).count();
    eprintln!("policy: 10000 users, 1000 roles, 100 permissions; {granted}/4096 sampled checks granted");

    let mut g = c.benchmark_group("rbac_check_10k_users_1k_roles_100_perms");
    let mut i = 0usize;
    g.bench_function("check_parsed", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            let (u, p) = &pairs[i];
            rbac.check(u, p)
        })
    });
    g.bench_function("check_str", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            let (u, p) = &strings[i];
            rbac.check_str(u, p)
        })
    });
    for n in [10usize, 100] {
        let batch: Vec<String> = perms.iter().take(n).map(|p| p.to_string()).collect();
        g.bench_with_input(BenchmarkId::new("check_many", n), &batch, |b, batch| {
            b.iter(|| {
                i = (i + 1) & 4095;
                rbac.check_many(&pairs[i].0, batch)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, rbac);
criterion_main!(benches);
