//! The mutation root.

use async_graphql::{Context, Object, ID};
use fafnir_auth::http::dto;
use fafnir_users::ProfileUpdate;

use crate::gateway::errors::{self, GqlError};

use super::context::*;
use super::types::*;
use super::{COST_PASSWORD, COST_SERVICE};

#[derive(Debug)]
pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates an account (no session: log in afterwards).
    #[graphql(complexity = "COST_PASSWORD + child_complexity")]
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<Option<User>, GqlError> {
        let body =
            dto::RegisterRequest { email: input.email, password: input.password, display_name: input.display_name };
        let res = post_auth(ctx, "/auth/register", None, Some(&body)).await?;
        let r: dto::UserResponse = json(&res)?;
        Ok(Some(r.user.into()))
    }

    /// Logs in: sets the three cookies, exactly as `POST /auth/login`.
    #[graphql(complexity = "COST_PASSWORD + child_complexity")]
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<Option<AuthPayload>, GqlError> {
        let body = dto::LoginRequest { email: input.email, password: input.password };
        let res = post_auth(ctx, "/auth/login", None, Some(&body)).await?;
        match json::<dto::LoginAnswer>(&res)? {
            dto::LoginAnswer::Session(login) => {
                pass_cookies(ctx, &res);
                Ok(Some(login.into()))
            }
            // No session yet: the error carries the challenge for `verifyMfa`.
            dto::LoginAnswer::MfaRequired(m) => Err(GqlError {
                reason: Some("MFA_REQUIRED".into()),
                mfa: Some(Box::new(errors::MfaChallenge { token: m.mfa_token, methods: m.methods })),
                ..GqlError::new(
                    errors::Code::Unauthenticated,
                    "a second factor is required: call verifyMfa with extensions.mfaToken and a code",
                )
            }),
        }
    }

    /// Finishes a login held at the second factor (`login` failed with reason `MFA_REQUIRED`):
    /// the challenge's `mfaToken` and a TOTP `code` or a `recoveryCode`. Sets the same cookies as
    /// `login`. As `POST /auth/mfa/verify`.
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn verify_mfa(&self, ctx: &Context<'_>, input: VerifyMfaInput) -> Result<Option<AuthPayload>, GqlError> {
        let body = dto::MfaVerifyRequest {
            mfa_token: Some(input.mfa_token),
            code: input.code,
            recovery_code: input.recovery_code,
        };
        let res = post_auth(ctx, "/auth/mfa/verify", None, Some(&body)).await?;
        if !res.status.is_success() {
            return Err(errors::rest(&res));
        }
        if let Ok(login) = serde_json::from_slice::<dto::LoginResponse>(&res.body) {
            pass_cookies(ctx, &res);
            return Ok(Some(login.into()));
        }
        // A challenge begun at /auth/token answers tokens (no cookies): the payload carries them.
        let t: dto::TokenResponse = json(&res)?;
        let me: dto::MeResponse = json(&get_auth(ctx, "/auth/me?grants=false", Some(&t.access_token)).await?)?;
        Ok(Some(AuthPayload {
            user: me.into(),
            access_expires_at: chrono::Utc::now() + chrono::Duration::seconds(t.expires_in),
            access_token: Some(t.access_token),
            refresh_token: Some(t.refresh_token),
        }))
    }

    /// Starts TOTP: the secret and `otpauth://` URL for the authenticator app (not in force
    /// until `confirmTotp`). As `POST /auth/mfa/totp/setup`.
    #[graphql(complexity = "COST_SERVICE")]
    async fn setup_totp(&self, ctx: &Context<'_>) -> Result<Option<TotpSetup>, GqlError> {
        let (_, token) = mutation_caller(ctx)?;
        let res = call_auth(ctx, axum::http::Method::POST, "/auth/mfa/totp/setup", &[], Some(token)).await?;
        let s: dto::TotpSetupResponse = json(&res)?;
        Ok(Some(TotpSetup { secret: s.secret, otpauth_url: s.otpauth_url }))
    }

    /// Turns TOTP on with a first code; answers the recovery codes (shown once).
    #[graphql(complexity = "COST_SERVICE")]
    async fn confirm_totp(&self, ctx: &Context<'_>, code: String) -> Result<Option<Vec<String>>, GqlError> {
        let (_, token) = mutation_caller(ctx)?;
        let res = send_auth_json(
            ctx,
            axum::http::Method::POST,
            "/auth/mfa/totp/confirm",
            Some(token),
            &dto::TotpCodeRequest { code },
        )
        .await?;
        let r: dto::RecoveryCodesResponse = json(&res)?;
        Ok(Some(r.recovery_codes))
    }

    /// Turns TOTP off with one of a code, a recovery code or the password.
    #[graphql(complexity = "COST_PASSWORD")]
    async fn disable_totp(&self, ctx: &Context<'_>, input: ReauthInput) -> Result<Option<bool>, GqlError> {
        let (_, token) = mutation_caller(ctx)?;
        let res =
            send_auth_json(ctx, axum::http::Method::DELETE, "/auth/mfa/totp", Some(token), &input.into_dto()).await?;
        accepted(res)
    }

    /// A new set of recovery codes (the old ones stop working), after re-authentication.
    #[graphql(complexity = "COST_PASSWORD")]
    async fn regenerate_recovery_codes(
        &self,
        ctx: &Context<'_>,
        input: ReauthInput,
    ) -> Result<Option<Vec<String>>, GqlError> {
        let (_, token) = mutation_caller(ctx)?;
        let res =
            send_auth_json(ctx, axum::http::Method::POST, "/auth/mfa/recovery-codes", Some(token), &input.into_dto())
                .await?;
        let r: dto::RecoveryCodesResponse = json(&res)?;
        Ok(Some(r.recovery_codes))
    }

    /// Starts registering a passkey (a sign-in within the last 10 minutes). As
    /// `POST /auth/passkeys/register/start`.
    #[graphql(complexity = "COST_SERVICE")]
    async fn start_passkey_registration(&self, ctx: &Context<'_>) -> Result<Option<PasskeyCeremony>, GqlError> {
        let (_, token) = mutation_caller(ctx)?;
        let res = call_auth(ctx, axum::http::Method::POST, "/auth/passkeys/register/start", &[], Some(token)).await?;
        Ok(Some(json::<dto::PasskeyStartResponse>(&res)?.into()))
    }

    /// Finishes a passkey registration with the browser's answer (`PublicKeyCredential.toJSON()`).
    /// The account's first second factor brings its recovery codes (shown once).
    #[graphql(complexity = "COST_SERVICE")]
    async fn finish_passkey_registration(
        &self,
        ctx: &Context<'_>,
        ceremony: String,
        credential: async_graphql::Json<serde_json::Value>,
        name: Option<String>,
    ) -> Result<Option<PasskeyRegistration>, GqlError> {
        let (_, token) = mutation_caller(ctx)?;
        let body = dto::PasskeyRegisterFinishRequest { ceremony, credential: credential.0, name };
        let res = post_auth(ctx, "/auth/passkeys/register/finish", Some(token), Some(&body)).await?;
        let r: dto::PasskeyRegisteredResponse = json(&res)?;
        Ok(Some(PasskeyRegistration { passkey: r.passkey.into(), recovery_codes: r.recovery_codes }))
    }

    /// Starts a passkey sign-in (no e-mail needed). As `POST /auth/passkeys/login/start`.
    #[graphql(complexity = "COST_SERVICE")]
    async fn start_passkey_login(&self, ctx: &Context<'_>) -> Result<Option<PasskeyCeremony>, GqlError> {
        let res = post_auth::<()>(ctx, "/auth/passkeys/login/start", None, None).await?;
        Ok(Some(json::<dto::PasskeyStartResponse>(&res)?.into()))
    }

    /// Finishes a passkey sign-in with the browser's assertion: sets the same cookies as
    /// `login` (a passkey counts as two factors).
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn finish_passkey_login(
        &self,
        ctx: &Context<'_>,
        ceremony: String,
        credential: async_graphql::Json<serde_json::Value>,
    ) -> Result<Option<AuthPayload>, GqlError> {
        let body = dto::PasskeyLoginFinishRequest { ceremony, credential: credential.0 };
        let res = post_auth(ctx, "/auth/passkeys/login/finish", None, Some(&body)).await?;
        let login: dto::LoginResponse = json(&res)?;
        pass_cookies(ctx, &res);
        Ok(Some(login.into()))
    }

    /// Renames one of the caller's passkeys.
    #[graphql(complexity = "COST_SERVICE")]
    async fn rename_passkey(&self, ctx: &Context<'_>, id: ID, name: String) -> Result<Option<Passkey>, GqlError> {
        let (_, token) = mutation_caller(ctx)?;
        let id = uuid::Uuid::parse_str(&id).map_err(|_| GqlError::new(errors::Code::NotFound, "passkey not found"))?;
        let res = send_auth_json(
            ctx,
            axum::http::Method::PATCH,
            &format!("/auth/passkeys/{id}"),
            Some(token),
            &dto::PasskeyRenameRequest { name },
        )
        .await?;
        Ok(Some(json::<dto::PasskeyDto>(&res)?.into()))
    }

    /// Removes one of the caller's passkeys (a sign-in within the last 10 minutes). The account's
    /// last second factor also needs `input` (the password, a code or a recovery code).
    #[graphql(complexity = "COST_PASSWORD")]
    async fn delete_passkey(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: Option<ReauthInput>,
    ) -> Result<Option<bool>, GqlError> {
        let (_, token) = mutation_caller(ctx)?;
        let id = uuid::Uuid::parse_str(&id).map_err(|_| GqlError::new(errors::Code::NotFound, "passkey not found"))?;
        let path = format!("/auth/passkeys/{id}");
        let res = match input {
            Some(i) => send_auth_json(ctx, axum::http::Method::DELETE, &path, Some(token), &i.into_dto()).await?,
            None => call_auth(ctx, axum::http::Method::DELETE, &path, &[], Some(token)).await?,
        };
        accepted(res)
    }

    /// Ends the session and clears the cookies; with `refreshToken` (API clients), the session
    /// that refresh token belongs to ends too (as REST's `POST /auth/logout {refresh_token}`).
    #[graphql(complexity = "COST_SERVICE")]
    async fn logout(&self, ctx: &Context<'_>, refresh_token: Option<String>) -> Result<Option<bool>, GqlError> {
        csrf_gate(ctx)?;
        let body = refresh_token.map(|t| dto::LogoutRequest { refresh_token: Some(t) });
        let res = post_auth(ctx, "/auth/logout", None, body.as_ref()).await?;
        if !res.status.is_success() {
            return Err(errors::rest(&res));
        }
        pass_cookies(ctx, &res);
        Ok(Some(true))
    }

    /// Rotates the refresh token: the one given (API clients: new tokens come back in the
    /// payload), else the `fafnir_refresh` cookie (it is scoped to `/auth`, so browsers send it
    /// only through `POST /auth/refresh`, which the gateway serves too).
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn refresh(&self, ctx: &Context<'_>, refresh_token: Option<String>) -> Result<Option<AuthPayload>, GqlError> {
        let body = refresh_token.map(|refresh_token| dto::RefreshRequest { refresh_token });
        if body.is_none() {
            csrf_gate(ctx)?;
        }
        let res = post_auth(ctx, "/auth/refresh", None, body.as_ref()).await?;
        pass_cookies(ctx, &res);
        let login: dto::LoginResponse = json(&res)?;
        Ok(Some(login.into()))
    }

    /// Changes the caller's password; every other session is revoked.
    #[graphql(complexity = "COST_PASSWORD")]
    async fn change_password(&self, ctx: &Context<'_>, input: ChangePasswordInput) -> Result<Option<bool>, GqlError> {
        let (_, token) = mutation_caller(ctx)?;
        let body =
            dto::PasswordChangeRequest { current_password: input.current_password, new_password: input.new_password };
        // By cookie, the cookie and CSRF header go as they came, so that auth-service applies its
        // own full CSRF check (bound to the session) as well.
        let bearer = (!info(ctx).via_cookie).then_some(token);
        let res = post_auth(ctx, "/auth/password", bearer, Some(&body)).await?;
        if !res.status.is_success() {
            return Err(errors::rest(&res));
        }
        Ok(Some(true))
    }

    /// Mails a new verification link: signed in, to the caller's address; else to `email`
    /// (answered alike whether or not it has an account). As `POST /auth/email/verify/request`.
    #[graphql(complexity = "COST_SERVICE")]
    async fn request_email_verification(
        &self,
        ctx: &Context<'_>,
        email: Option<String>,
    ) -> Result<Option<bool>, GqlError> {
        let bearer = match caller(ctx) {
            Ok((_, token)) => {
                csrf_gate(ctx)?;
                (!info(ctx).via_cookie).then_some(token)
            }
            Err(_) if email.is_some() => None,
            Err(e) => return Err(e),
        };
        let body = dto::VerifyRequest { email };
        accepted(post_auth(ctx, "/auth/email/verify/request", bearer, Some(&body)).await?)
    }

    /// Verifies an address with the token of the mailed link. As `POST /auth/email/verify`.
    #[graphql(complexity = "COST_SERVICE")]
    async fn verify_email(&self, ctx: &Context<'_>, token: String) -> Result<Option<bool>, GqlError> {
        accepted(post_auth(ctx, "/auth/email/verify", None, Some(&dto::LinkTokenRequest { token })).await?)
    }

    /// Asks for a password reset link; the answer is the same whether or not an account has the
    /// address. As `POST /auth/password/forgot`.
    #[graphql(complexity = "COST_SERVICE")]
    async fn forgot_password(&self, ctx: &Context<'_>, email: String) -> Result<Option<bool>, GqlError> {
        accepted(post_auth(ctx, "/auth/password/forgot", None, Some(&dto::ForgotPasswordRequest { email })).await?)
    }

    /// Sets a new password with a reset link's token; every session of the account ends, and
    /// none starts. As `POST /auth/password/reset`.
    #[graphql(complexity = "COST_PASSWORD")]
    async fn reset_password(&self, ctx: &Context<'_>, input: ResetPasswordInput) -> Result<Option<bool>, GqlError> {
        let body = dto::ResetPasswordRequest { token: input.token, new_password: input.new_password };
        accepted(post_auth(ctx, "/auth/password/reset", None, Some(&body)).await?)
    }

    /// Starts a change of address (the new address must confirm; the current one is told). As
    /// `POST /auth/email/change`.
    #[graphql(complexity = "COST_PASSWORD")]
    async fn change_email(&self, ctx: &Context<'_>, input: ChangeEmailInput) -> Result<Option<bool>, GqlError> {
        let (_, token) = mutation_caller(ctx)?;
        let body = dto::EmailChangeRequest { new_email: input.new_email, current_password: input.current_password };
        let bearer = (!info(ctx).via_cookie).then_some(token);
        accepted(post_auth(ctx, "/auth/email/change", bearer, Some(&body)).await?)
    }

    /// Confirms a change of address with the token mailed to the new address. As
    /// `POST /auth/email/change/confirm`.
    #[graphql(complexity = "COST_SERVICE")]
    async fn confirm_email_change(&self, ctx: &Context<'_>, token: String) -> Result<Option<bool>, GqlError> {
        accepted(post_auth(ctx, "/auth/email/change/confirm", None, Some(&dto::LinkTokenRequest { token })).await?)
    }

    /// Deletes the caller's account after the current password (an account without a password:
    /// within 10 minutes of signing in). As `DELETE /auth/account`.
    #[graphql(complexity = "COST_PASSWORD")]
    async fn delete_account(
        &self,
        ctx: &Context<'_>,
        current_password: Option<String>,
    ) -> Result<Option<bool>, GqlError> {
        let (_, token) = mutation_caller(ctx)?;
        let bearer = (!info(ctx).via_cookie).then_some(token);
        let body = fafnir_auth::http::DeleteAccountRequest { current_password };
        let res = send_auth_json(ctx, axum::http::Method::DELETE, "/auth/account", bearer, &body).await?;
        if res.status.is_success() {
            pass_cookies(ctx, &res);
            Ok(Some(true))
        } else {
            Err(errors::rest(&res))
        }
    }

    /// Unlinks one of the caller's identities. Refused with `LAST_SIGN_IN_METHOD` when the
    /// account would be left with no way to sign in.
    #[graphql(complexity = "COST_SERVICE")]
    async fn unlink_identity(&self, ctx: &Context<'_>, id: ID) -> Result<Option<bool>, GqlError> {
        let (_, token) = mutation_caller(ctx)?;
        let id = uuid::Uuid::parse_str(&id).map_err(|_| GqlError::new(errors::Code::NotFound, "identity not found"))?;
        let res =
            call_auth(ctx, axum::http::Method::DELETE, &format!("/auth/identities/{id}"), &[], Some(token)).await?;
        accepted(res)
    }

    /// Disables an account (needs `users:manage`): it cannot sign in, its sessions end now.
    /// `true` if it changed.
    #[graphql(complexity = "COST_SERVICE")]
    async fn disable_user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<bool>, GqlError> {
        admin_action(ctx, &id, "disable").await
    }

    /// Enables a disabled account (needs `users:manage`). `true` if it changed.
    #[graphql(complexity = "COST_SERVICE")]
    async fn enable_user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<bool>, GqlError> {
        admin_action(ctx, &id, "enable").await
    }

    /// Lifts an account's failed-login lock (needs `users:manage`). `true` if it was locked.
    #[graphql(complexity = "COST_SERVICE")]
    async fn unlock_user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<bool>, GqlError> {
        admin_action(ctx, &id, "unlock").await
    }

    /// Ends every session of an account (needs `users:manage`). `true` if there were any.
    #[graphql(complexity = "COST_SERVICE")]
    async fn revoke_user_sessions(&self, ctx: &Context<'_>, id: ID) -> Result<Option<bool>, GqlError> {
        admin_action(ctx, &id, "revoke-sessions").await
    }

    /// Mails an account a password reset link (needs `users:manage`).
    #[graphql(complexity = "COST_SERVICE")]
    async fn send_password_reset(&self, ctx: &Context<'_>, id: ID) -> Result<Option<bool>, GqlError> {
        admin_action(ctx, &id, "send-password-reset").await
    }

    /// Deletes an account everywhere (needs `users:manage`).
    #[graphql(complexity = "COST_SERVICE")]
    async fn delete_user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<bool>, GqlError> {
        let (_, token) = mutation_caller(ctx)?;
        let id = parse_user("id", &id)?;
        let res = call_auth(ctx, axum::http::Method::DELETE, &format!("/admin/users/{id}"), &[], Some(token)).await?;
        accepted(res)
    }

    /// Updates a profile: the caller's (needs `profile:write`) or, with `userId`, anyone's
    /// (needs `users:write`).
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        input: ProfileInput,
        user_id: Option<ID>,
    ) -> Result<Option<Profile>, GqlError> {
        let (me, token) = mutation_caller(ctx)?;
        let subject = match &user_id {
            Some(id) => parse_user("userId", id)?,
            None => me,
        };
        live_session(ctx, token).await?;
        require(ctx, me, token, if subject == me { "profile:write" } else { "users:write" }).await?;
        let p = services(ctx)
            .profiles
            .update(Some(token), subject, &ProfileUpdate::from(input))
            .await
            .map_err(errors::users)?;
        Ok(Some(p.into()))
    }

    /// Grants a role. Needs `roles:manage`.
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn assign_role(
        &self,
        ctx: &Context<'_>,
        input: RoleAssignmentInput,
    ) -> Result<Option<RoleAssignment>, GqlError> {
        role_change(ctx, input, true).await.map(Some)
    }

    /// Revokes a role. Needs `roles:manage`.
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn revoke_role(
        &self,
        ctx: &Context<'_>,
        input: RoleAssignmentInput,
    ) -> Result<Option<RoleAssignment>, GqlError> {
        role_change(ctx, input, false).await.map(Some)
    }
}

/// `POST /admin/users/{id}/{action}` as the caller; `changed` of the answer.
async fn admin_action(ctx: &Context<'_>, id: &ID, action: &str) -> Result<Option<bool>, GqlError> {
    let (_, token) = mutation_caller(ctx)?;
    let id = parse_user("id", id)?;
    let res =
        call_auth(ctx, axum::http::Method::POST, &format!("/admin/users/{id}/{action}"), &[], Some(token)).await?;
    let r: fafnir_auth::http::AdminActionResponse = json(&res)?;
    Ok(Some(r.changed))
}

/// `true` for a 2xx answer of auth-service, else its error.
fn accepted(res: crate::gateway::upstream::UpstreamResponse) -> Result<Option<bool>, GqlError> {
    if res.status.is_success() {
        Ok(Some(true))
    } else {
        Err(errors::rest(&res))
    }
}

async fn role_change(ctx: &Context<'_>, input: RoleAssignmentInput, grant: bool) -> Result<RoleAssignment, GqlError> {
    let (me, token) = mutation_caller(ctx)?;
    let user = parse_user("userId", &input.user_id)?;
    live_session(ctx, token).await?;
    require(ctx, me, token, "roles:manage").await?;
    let dir = &services(ctx).roles;
    let r = if grant {
        dir.assign(Some(token), me, user, &input.role).await
    } else {
        dir.revoke(Some(token), me, user, &input.role).await
    };
    let changed = r.map_err(|e| errors::service("the security service", e))?;
    Ok(RoleAssignment { user_id: input.user_id, role: input.role, changed })
}
