//! The query root.

use async_graphql::{Context, Object, ID};
use fafnir_auth::http::dto;
use fafnir_users::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

use crate::gateway::errors::{self, Code, GqlError};

use super::context::*;
use super::types::*;
use super::COST_SERVICE;

fn audit_page(res: &crate::gateway::upstream::UpstreamResponse) -> Result<Option<AuditPage>, GqlError> {
    let page: fafnir_auth::http::AuditResponse = json(res)?;
    Ok(Some(AuditPage { events: page.events.into_iter().map(Into::into).collect(), next: page.next }))
}

// ---- roots ----

#[derive(Debug)]
pub struct Query;

#[Object]
impl Query {
    /// The gateway is up.
    async fn health(&self) -> Health {
        Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    /// The configured sign-in providers (public): start a sign-in by sending the browser to
    /// `/auth/oauth/{name}/authorize?return_to=/path`.
    #[graphql(complexity = "COST_SERVICE")]
    async fn auth_providers(&self, ctx: &Context<'_>) -> Result<Vec<AuthProvider>, GqlError> {
        let res = get_auth(ctx, "/auth/oauth/providers", None).await?;
        let list: Vec<dto::ProviderDto> = json(&res)?;
        Ok(list.into_iter().map(AuthProvider::from).collect())
    }

    /// The caller. Checks the session (a logged-out token is refused).
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<Me>, GqlError> {
        let (user, token) = caller(ctx)?;
        let look = ctx.look_ahead();
        let want_grants = look.field("roles").exists() || look.field("permissions").exists();
        let want_profile = look.field("profile").exists();
        let s = services(ctx);
        let account = get_auth(ctx, "/auth/me?grants=false", Some(token));
        let grants = async {
            if !want_grants {
                return None;
            }
            Some(match s.checker.grants(Some(token), user).await {
                Ok(g) => Ok(g.unwrap_or_default()),
                Err(e) => Err(errors::service("the security service", e)),
            })
        };
        let profile = async {
            if !want_profile {
                return None;
            }
            Some(s.profiles.get(Some(token), user).await.map_err(errors::users))
        };
        let (account, grants, profile) = tokio::join!(account, grants, profile);
        let account: dto::MeResponse = json(&account?)?;
        let sign_in_methods = account.sign_in_methods.clone();
        Ok(Some(Me { user: account.into(), sign_in_methods, grants, profile }))
    }

    /// Accounts for administrators (needs `users:manage`), by e-mail: `query` is an e-mail
    /// prefix, `state` is `active` or `disabled`. As `GET /admin/users`.
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn admin_users(
        &self,
        ctx: &Context<'_>,
        query: Option<String>,
        state: Option<String>,
        role: Option<String>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<Option<AdminUserPage>, GqlError> {
        let (_, token) = caller(ctx)?;
        let res = call_auth(
            ctx,
            axum::http::Method::GET,
            "/admin/users",
            &[("query", query), ("state", state), ("role", role), ("first", Some(first.to_string())), ("after", after)],
            Some(token),
        )
        .await?;
        let page: fafnir_auth::http::UsersResponse = json(&res)?;
        Ok(Some(AdminUserPage { users: page.users.into_iter().map(Into::into).collect(), next: page.next }))
    }

    /// The audit log for administrators (needs `users:manage`), newest first. As
    /// `GET /admin/audit`.
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type")] kind: Option<String>,
        actor: Option<ID>,
        subject: Option<ID>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> Result<Option<AuditPage>, GqlError> {
        let (_, token) = caller(ctx)?;
        let res = call_auth(
            ctx,
            axum::http::Method::GET,
            "/admin/audit",
            &[
                ("type", kind),
                ("actor", actor.map(|a| a.0)),
                ("subject", subject.map(|s| s.0)),
                ("first", Some(first.to_string())),
                ("after", after),
            ],
            Some(token),
        )
        .await?;
        audit_page(&res)
    }

    /// The caller's own recent sign-ins. As `GET /auth/activity`.
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn my_activity(&self, ctx: &Context<'_>) -> Result<Option<AuditPage>, GqlError> {
        let (_, token) = caller(ctx)?;
        let res = call_auth(ctx, axum::http::Method::GET, "/auth/activity", &[], Some(token)).await?;
        audit_page(&res)
    }

    /// Whether the caller (or, with `users:read`, another user) holds a permission.
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn check_permission(
        &self,
        ctx: &Context<'_>,
        request: HasPermissionRequest,
    ) -> Result<Option<HasPermissionResponse>, GqlError> {
        let (me, token) = caller(ctx)?;
        let subject = match &request.user_id {
            Some(id) => parse_user("userId", id)?,
            None => me,
        };
        may_read(ctx, me, token, subject).await?;
        let d = services(ctx)
            .checker
            .check(Some(token), subject, &request.permission)
            .await
            .map_err(|e| errors::service("the security service", e))?;
        Ok(Some(HasPermissionResponse { has_permission: d.allowed, permission_code: d.code.into() }))
    }

    /// A profile: the caller's when `userId` is absent; anyone else's needs `users:read`.
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn profile(&self, ctx: &Context<'_>, user_id: Option<ID>) -> Result<Option<Profile>, GqlError> {
        let (me, token) = caller(ctx)?;
        let subject = match &user_id {
            Some(id) => parse_user("userId", id)?,
            None => me,
        };
        may_read(ctx, me, token, subject).await?;
        match services(ctx).profiles.get(Some(token), subject).await {
            Ok(p) => Ok(Some(p.into())),
            Err(fafnir_users::UsersError::NotFound) => {
                Err(GqlError::new(Code::NotFound, "no profile for this user id"))
            }
            Err(e) => Err(errors::users(e)),
        }
    }

    /// The user directory, oldest first. Needs `users:read`.
    #[graphql(
        complexity = "COST_SERVICE + first.unwrap_or(DEFAULT_PAGE_SIZE as i32).clamp(1, MAX_PAGE_SIZE as i32) as usize * child_complexity"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "Page size, 1 to 100.")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> Result<Option<UserConnection>, GqlError> {
        let (me, token) = caller(ctx)?;
        let first = first.unwrap_or(DEFAULT_PAGE_SIZE as i32);
        if !(1..=MAX_PAGE_SIZE as i32).contains(&first) {
            return Err(GqlError::bad_input("first", format!("first must be between 1 and {MAX_PAGE_SIZE}")));
        }
        require(ctx, me, token, "users:read").await?;
        let page = services(ctx)
            .profiles
            .list(Some(token), Some(first as u32), after.as_deref())
            .await
            .map_err(errors::users)?;
        let nodes = page
            .items
            .into_iter()
            .map(|p| DirectoryUser { id: ID(p.user_id.to_string()), user_id: p.user_id, profile: p.into() })
            .collect();
        Ok(Some(UserConnection {
            nodes,
            page_info: PageInfo { has_next_page: page.next_cursor.is_some(), end_cursor: page.next_cursor },
        }))
    }

    /// Every role. Needs a logged-in caller.
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn roles(&self, ctx: &Context<'_>) -> Result<Option<Vec<Role>>, GqlError> {
        let (_, token) = caller(ctx)?;
        let roles =
            services(ctx).roles.roles(Some(token)).await.map_err(|e| errors::service("the security service", e))?;
        Ok(Some(
            roles
                .into_iter()
                .map(|r| Role {
                    name: r.name,
                    description: r.description,
                    permissions: r.permissions,
                    inherits: r.inherits,
                    builtin: r.builtin,
                })
                .collect(),
        ))
    }
}
