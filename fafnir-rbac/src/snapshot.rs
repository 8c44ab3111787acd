//! The in-memory policy that answers checks: effective permissions per role (inheritance
//! resolved once, when the snapshot is built) and each user's roles.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use fafnir_core::cache::TrustedKeys;
use fafnir_core::permission::WILDCARD;
use fafnir_core::{Permission, UserId};

use crate::model::{Decision, RbacError, Role, RoleName};

/// Effective permissions of one role, indexed for O(1) matching of each wildcard form.
#[derive(Debug, Default, Clone)]
pub(crate) struct PermSet {
    all: bool,                     // *:*
    exact: HashSet<String>,        // users:read
    any_action: HashSet<String>,   // users:*  (by resource)
    any_resource: HashSet<String>, // *:read   (by action)
}

impl PermSet {
    fn add(&mut self, p: &Permission) {
        match (p.resource() == WILDCARD, p.action() == WILDCARD) {
            (true, true) => self.all = true,
            (false, true) => {
                self.any_action.insert(p.resource().to_owned());
            }
            (true, false) => {
                self.any_resource.insert(p.action().to_owned());
            }
            (false, false) => {
                self.exact.insert(p.as_str().to_owned());
            }
        }
    }

    /// Same rule as [`Permission::grants`]: a grant `R:A` covers a request `r:a` when
    /// `R` is `*` or `r`, and `A` is `*` or `a`. (`*` in a request is matched literally.)
    #[inline]
    fn grants(&self, p: &Permission) -> bool {
        self.all
            || self.exact.contains(p.as_str())
            || self.any_action.contains(p.resource())
            || self.any_resource.contains(p.action())
    }
}

#[derive(Debug)]
pub(crate) struct RoleEntry {
    pub role: Role,
    pub effective: PermSet,
    pub effective_list: Vec<Permission>,
}

/// What one set of roles grants, worked out once and shared by every user who holds exactly
/// that set (most users hold one of a few sets).
#[derive(Debug)]
pub(crate) struct RoleSet {
    /// The role names, sorted.
    pub names: Vec<RoleName>,
    /// The roles that exist (a name granted before its role was deleted has none).
    pub entries: Vec<Arc<RoleEntry>>,
    /// The effective permissions: sorted (by their text), without repeats.
    pub permissions: Vec<Permission>,
    /// The same, as answers carry them.
    pub permission_names: Vec<String>,
}

impl RoleSet {
    fn new(names: Vec<RoleName>, roles: &BTreeMap<RoleName, Arc<RoleEntry>>) -> Self {
        let entries: Vec<Arc<RoleEntry>> = names.iter().filter_map(|n| roles.get(n).cloned()).collect();
        let mut permissions: Vec<Permission> = entries.iter().flat_map(|r| r.effective_list.iter().cloned()).collect();
        permissions.sort();
        permissions.dedup();
        let permission_names = permissions.iter().map(|p| p.as_str().to_owned()).collect();
        Self { names, entries, permissions, permission_names }
    }
}

/// Everything a check needs, immutable once built.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub version: i64,
    pub roles: BTreeMap<RoleName, Arc<RoleEntry>>,
    /// Each known user's roles. User ids come from the store, never from a caller: hashed with
    /// foldhash (every check and `me` looks a user up here).
    pub users: HashMap<UserId, Arc<RoleSet>, TrustedKeys>,
    /// The role sets in `users`, to share one per distinct set. Each was worked out from
    /// `roles` as they are: a change to any role must build a new snapshot (`build`, as every
    /// role write does through `reload`), never patch `roles` in place.
    sets: HashMap<Vec<RoleName>, Arc<RoleSet>>,
}

/// Raw policy rows as loaded from the store.
#[derive(Debug, Default)]
pub struct PolicyData {
    pub version: i64,
    pub roles: Vec<Role>,
    pub users: Vec<(UserId, Vec<RoleName>)>,
}

impl Snapshot {
    pub(crate) fn build(data: PolicyData) -> Snapshot {
        let by_name: HashMap<&RoleName, &Role> = data.roles.iter().map(|r| (&r.name, r)).collect();
        let mut roles = BTreeMap::new();
        for role in &data.roles {
            let mut effective = PermSet::default();
            let mut list: Vec<Permission> = Vec::new();
            // Walk the inheritance graph; `seen` also guards against a cycle that slipped into
            // the store by hand (writes through Fafnir reject cycles).
            let mut seen: HashSet<&RoleName> = HashSet::new();
            let mut stack = vec![&role.name];
            while let Some(name) = stack.pop() {
                if !seen.insert(name) {
                    continue;
                }
                if let Some(r) = by_name.get(name) {
                    for p in &r.permissions {
                        effective.add(p);
                        if !list.contains(p) {
                            list.push(p.clone());
                        }
                    }
                    stack.extend(r.inherits.iter());
                }
            }
            list.sort();
            roles
                .insert(role.name.clone(), Arc::new(RoleEntry { role: role.clone(), effective, effective_list: list }));
        }
        let mut snap = Snapshot { version: data.version, roles, ..Default::default() };
        for (user, names) in data.users {
            snap.set_user(user, names);
        }
        snap
    }

    /// Replaces one user's grants (a local write, without reloading everything).
    pub(crate) fn set_user(&mut self, user: UserId, mut names: Vec<RoleName>) {
        names.sort();
        names.dedup();
        let set = match self.sets.get(&names) {
            Some(set) => set.clone(),
            None => {
                let set = Arc::new(RoleSet::new(names.clone(), &self.roles));
                self.sets.insert(names, set.clone());
                set
            }
        };
        self.users.insert(user, set);
    }

    pub(crate) fn remove_user(&mut self, user: &UserId) {
        self.users.remove(user);
    }

    /// Copies the snapshot for a local patch. Roles and role sets are shared (`Arc`), only
    /// maps are copied.
    pub(crate) fn patched(&self) -> Snapshot {
        Snapshot {
            version: self.version,
            roles: self.roles.clone(),
            users: self.users.clone(),
            sets: self.sets.clone(),
        }
    }

    /// The user's roles (sorted), if the user is known.
    pub(crate) fn role_names_of(&self, user: &UserId) -> Option<&[RoleName]> {
        self.users.get(user).map(|s| s.names.as_slice())
    }

    #[inline]
    pub(crate) fn check(&self, user: &UserId, p: &Permission) -> Decision {
        match self.users.get(user) {
            None => Decision::NO_USER,
            Some(set) if set.entries.iter().any(|r| r.effective.grants(p)) => Decision::GRANTED,
            Some(_) => Decision::DENIED,
        }
    }

    pub(crate) fn check_str(&self, user: &UserId, p: &str) -> Decision {
        match Permission::parse(p) {
            Ok(p) => self.check(user, &p),
            Err(_) => Decision::INVALID,
        }
    }

    /// [`Snapshot::permissions_of`] as the strings an answer carries (worked out with the
    /// user's role set).
    #[cfg(test)]
    pub(crate) fn permission_names_of(&self, user: &UserId) -> &[String] {
        self.users.get(user).map_or(&[], |s| s.permission_names.as_slice())
    }

    pub(crate) fn permissions_of(&self, user: &UserId) -> Option<Vec<Permission>> {
        self.users.get(user).map(|set| set.permissions.clone())
    }
}

/// Refuses an inheritance graph in which a role reaches itself. `edges` maps role → parents.
pub fn find_cycle(edges: &HashMap<RoleName, Vec<RoleName>>, start: &RoleName) -> Option<Vec<RoleName>> {
    // Depth-first search from `start`, remembering the path to report it.
    fn dfs(
        edges: &HashMap<RoleName, Vec<RoleName>>,
        node: &RoleName,
        start: &RoleName,
        path: &mut Vec<RoleName>,
        done: &mut HashSet<RoleName>,
    ) -> bool {
        for parent in edges.get(node).into_iter().flatten() {
            if parent == start {
                path.push(parent.clone());
                return true;
            }
            if done.insert(parent.clone()) {
                path.push(parent.clone());
                if dfs(edges, parent, start, path, done) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.clone()];
    let mut done = HashSet::new();
    dfs(edges, start, start, &mut path, &mut done).then_some(path)
}

/// The error for a cycle found by [`find_cycle`].
pub(crate) fn cycle_error(role: &RoleName, path: &[RoleName]) -> RbacError {
    let chain: Vec<&str> = path.iter().map(RoleName::as_str).collect();
    RbacError::Cycle(role.clone(), chain.join(" -> "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rn(s: &str) -> RoleName {
        RoleName::parse(s).unwrap()
    }
    fn p(s: &str) -> Permission {
        Permission::parse(s).unwrap()
    }
    fn role(name: &str, perms: &[&str], inherits: &[&str]) -> Role {
        Role {
            name: rn(name),
            description: String::new(),
            permissions: perms.iter().map(|s| p(s)).collect(),
            inherits: inherits.iter().map(|s| rn(s)).collect(),
            builtin: false,
        }
    }

    #[test]
    fn inheritance_and_wildcards() {
        let u = UserId::new();
        let v = UserId::new();
        let snap = Snapshot::build(PolicyData {
            version: 1,
            roles: vec![
                role("viewer", &["docs:read", "*:list"], &[]),
                role("editor", &["docs:write", "images:*"], &["viewer"]),
                role("root", &["*:*"], &[]),
            ],
            users: vec![(u, vec![rn("editor")]), (v, vec![])],
        });
        let yes = |perm: &str| snap.check_str(&u, perm).allowed;
        assert!(yes("docs:read") && yes("docs:write") && yes("images:delete") && yes("users:list"));
        assert!(yes("images:*"));
        assert!(!yes("docs:delete") && !yes("docs:*") && !yes("*:*") && !yes("*:read"));
        assert_eq!(snap.check_str(&u, "Docs:Read").code, crate::CheckCode::InvalidPermission);
        assert_eq!(snap.check_str(&v, "docs:read").code, crate::CheckCode::PermissionDenied);
        assert_eq!(snap.check_str(&UserId::new(), "docs:read").code, crate::CheckCode::UserNotFound);
        assert_eq!(snap.permissions_of(&u).unwrap().len(), 4);
        // The answer's strings: the same permissions, sorted, no repeats (editor reaches viewer's).
        assert_eq!(snap.permission_names_of(&u), ["*:list", "docs:read", "docs:write", "images:*"]);
        let as_text: Vec<String> = snap.permissions_of(&u).unwrap().iter().map(|p| p.to_string()).collect();
        assert_eq!(snap.permission_names_of(&u), as_text);
        assert!(snap.permission_names_of(&v).is_empty() && snap.permission_names_of(&UserId::new()).is_empty());
    }

    #[test]
    fn users_with_the_same_roles_share_one_role_set() {
        let (a, b, c) = (UserId::new(), UserId::new(), UserId::new());
        let mut snap = Snapshot::build(PolicyData {
            version: 1,
            roles: vec![role("viewer", &["docs:read"], &[]), role("editor", &["docs:write"], &["viewer"])],
            // Order and repeats do not make another set; a deleted role's name is kept.
            users: vec![
                (a, vec![rn("editor"), rn("viewer")]),
                (b, vec![rn("viewer"), rn("editor"), rn("viewer")]),
                (c, vec![rn("gone")]),
            ],
        });
        assert!(Arc::ptr_eq(&snap.users[&a], &snap.users[&b]));
        assert_eq!(snap.role_names_of(&b).unwrap(), [rn("editor"), rn("viewer")]);
        assert_eq!(snap.role_names_of(&c).unwrap(), [rn("gone")]);
        assert!(snap.permission_names_of(&c).is_empty());
        // Changing one user's roles leaves the other's alone.
        snap.set_user(b, vec![rn("viewer")]);
        assert_eq!(snap.permission_names_of(&a), ["docs:read", "docs:write"]);
        assert_eq!(snap.permission_names_of(&b), ["docs:read"]);
        assert!(!snap.check_str(&b, "docs:write").allowed && snap.check_str(&a, "docs:write").allowed);
        snap.remove_user(&a);
        assert!(snap.role_names_of(&a).is_none());
        assert_eq!(snap.check_str(&a, "docs:read").code, crate::CheckCode::UserNotFound);
    }

    #[test]
    fn cycles_are_found() {
        let mut edges: HashMap<RoleName, Vec<RoleName>> = HashMap::new();
        edges.insert(rn("a"), vec![rn("b")]);
        edges.insert(rn("b"), vec![rn("c")]);
        assert!(find_cycle(&edges, &rn("a")).is_none());
        edges.insert(rn("c"), vec![rn("a")]);
        let path = find_cycle(&edges, &rn("a")).unwrap();
        assert_eq!(path, vec![rn("a"), rn("b"), rn("c"), rn("a")]);
        edges.clear();
        edges.insert(rn("a"), vec![rn("a")]);
        assert!(find_cycle(&edges, &rn("a")).is_some());
    }

    #[test]
    fn role_names() {
        assert!(RoleName::parse("billing-admin_2").is_ok());
        for bad in ["", "Admin", "1x", "a b", "a:b", "\0", &"a".repeat(65)] {
            assert!(RoleName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
