//! `fafnir`: every Fafnir service in one process, and the admin CLI.

use std::io::BufRead;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fafnir_core::Config;
use fafnir_rbac::RoleName;
use fafnir_server::{ConfigArgs, Stack};

/// mimalloc instead of glibc's malloc, whose arena locks the worker threads contend on under load
/// (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "fafnir",
    version,
    about = "Fafnir: authentication and identity. Without a subcommand, runs `serve`.",
    after_help = "Configuration: flag > environment (FAFNIR_*) > --config FILE (TOML) > default.\n\
                  First admin: echo 'a long passphrase' | fafnir user create --email you@example.com --password-stdin --role admin"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve everything in one process: HTTP (REST /auth/*, JWKS, OpenAPI and /docs, health, metrics) and gRPC (security and user services) (the default)
    Serve,
    /// Apply database migrations, then exit (serve applies them too)
    Migrate,
    /// Manage accounts
    #[command(subcommand)]
    User(UserCommand),
    /// Grant or revoke roles
    #[command(subcommand)]
    Role(RoleCommand),
    /// Manage token signing keys
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Check the mail settings (FAFNIR_SMTP_URL, FAFNIR_MAIL_FROM)
    #[command(subcommand)]
    Mail(MailCommand),
    /// Social login providers (FAFNIR_OAUTH_<NAME>_*)
    #[command(subcommand)]
    Oauth(OauthCommand),
    /// Exit 0 when this host's Fafnir answers `GET /healthz` on FAFNIR_HTTP_ADDR within 3 s
    /// (for container health checks: the image has no shell or curl)
    Healthcheck,
    /// List security events (newest first)
    Audit {
        /// Only events of this type (repeatable), e.g. --type login_failed
        #[arg(long = "type", value_name = "TYPE")]
        types: Vec<String>,
        /// Only events about the account with this e-mail
        #[arg(long)]
        email: Option<String>,
        /// How many (1 to 100)
        #[arg(long, default_value_t = 50)]
        first: usize,
    },
}

#[derive(Debug, Subcommand)]
enum OauthCommand {
    /// List the configured providers with the callback URL to register at each, and check that
    /// each OpenID Connect provider's discovery and keys can be fetched now (exit status 1 if
    /// one cannot)
    Providers,
}

#[derive(Debug, Subcommand)]
enum MailCommand {
    /// Send a test message through the configured mail server (or to the log when none is set)
    Test {
        /// The recipient
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account (it gets `member`, and any --role given)
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input (never from the command line)
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Also grant this role (repeatable), e.g. --role admin
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
    /// List accounts by e-mail, with their state and last sign-in
    List {
        /// Only accounts whose e-mail starts with this
        #[arg(long)]
        query: Option<String>,
        /// active or disabled
        #[arg(long)]
        state: Option<String>,
        /// How many (1 to 100)
        #[arg(long, default_value_t = 100)]
        first: usize,
    },
    /// Disable an account: it cannot sign in, and its sessions end now
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled account
    Enable {
        #[arg(long)]
        email: String,
    },
    /// Lift an account's failed-login lock
    Unlock {
        #[arg(long)]
        email: String,
    },
    /// Delete an account everywhere (sessions, roles, profile)
    Delete {
        #[arg(long)]
        email: String,
    },
    /// Second factors of an account
    #[command(subcommand)]
    Mfa(MfaCommand),
}

#[derive(Debug, Subcommand)]
enum MfaCommand {
    /// Clear every second factor of an account (TOTP, recovery codes), for a person who lost
    /// them; audited. They sign in with the password alone until they set one up again
    Reset {
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
enum RoleCommand {
    /// Grant a role to the account with this e-mail
    Grant {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
    /// Revoke a role from the account with this e-mail
    Revoke {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a new signing key active; the old one stays published until its tokens expire
    Rotate,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = run(cli).await;
    fafnir_server::telemetry::shutdown_tracing().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn open(config: Config) -> Result<Stack, String> {
    Stack::open(config).await.map_err(|e| e.to_string())
}

fn role(name: &str) -> Result<RoleName, String> {
    RoleName::parse(name).map_err(|e| format!("invalid role `{name}`: {e}"))
}

fn read_password() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let pw = line.strip_suffix('\n').unwrap_or(&line);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    if pw.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok(pw.to_owned())
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = cli.config.load(Config::default(), fafnir_server::config::process_env()).map_err(|e| e.to_string())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Healthcheck => healthcheck(config.http_addr),
        Command::Serve => {
            fafnir_server::run_all_in_one(config, axum::Router::new(), fafnir_server::Shutdown::on_signal())
                .await
                .map_err(|e| e.to_string())
        }
        Command::Migrate => {
            let stack = open(config).await?;
            stack.db.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::User(UserCommand::Create { email, password_stdin: _, roles }) => {
            let roles = roles.iter().map(|r| role(r)).collect::<Result<Vec<_>, _>>()?;
            let password = read_password()?;
            let stack = open(config).await?;
            for r in &roles {
                if stack.rbac.role(r).is_none() {
                    return Err(format!("role `{r}` does not exist"));
                }
            }
            let account = stack.auth.register(&email, &password, None).await.map_err(|e| e.to_string())?;
            for r in &roles {
                if stack.rbac.grant(account.id, r).await.map_err(|e| e.to_string())? {
                    let ev = fafnir_auth::AuditEvent::new(fafnir_auth::AuditKind::RoleGranted)
                        .subject(account.id)
                        .detail("role", r.as_str())
                        .detail("by", "cli");
                    stack.audit.store(&ev).await.map_err(|e| e.to_string())?;
                }
            }
            stack.audit.flush().await;
            println!("created {} ({})", account.email, account.id);
            Ok(())
        }
        Command::User(UserCommand::List { query, state, first }) => {
            let state = match state.as_deref() {
                None => None,
                Some(s) => Some(fafnir_auth::AccountState::parse(s).ok_or("--state is active or disabled")?),
            };
            if !(1..=fafnir_auth::MAX_USERS_PAGE).contains(&first) {
                return Err("--first is 1 to 100".into());
            }
            let stack = open(config).await?;
            let page = stack.auth.list_users(query.as_deref(), state, first, None).await.map_err(|e| e.to_string())?;
            for u in &page.users {
                let last = u.last_sign_in_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into());
                let verified = if u.email_verified { "verified" } else { "unverified" };
                println!("{}\t{}\t{}\t{verified}\tlast sign-in {last}", u.email, u.id, u.state);
            }
            if page.next.is_some() {
                println!("… more: narrow with --query");
            }
            Ok(())
        }
        Command::User(cmd) => {
            let stack = open(config).await?;
            let email = match &cmd {
                UserCommand::Disable { email }
                | UserCommand::Enable { email }
                | UserCommand::Unlock { email }
                | UserCommand::Delete { email }
                | UserCommand::Mfa(MfaCommand::Reset { email }) => email.clone(),
                UserCommand::Create { .. } | UserCommand::List { .. } => unreachable!("handled above"),
            };
            let account = stack.auth.user_by_email(&email).await.map_err(|e| match e {
                fafnir_auth::AuthError::UserNotFound => format!("no account with email {email}"),
                other => other.to_string(),
            })?;
            let cli = fafnir_auth::ClientInfo { ip: None, user_agent: Some("fafnir-cli".into()) };
            let auth = &stack.auth;
            let said = match cmd {
                UserCommand::Disable { .. } => {
                    let changed = auth.disable_user(None, account.id, &cli).await.map_err(|e| e.to_string())?;
                    if changed {
                        "disabled; its sessions ended"
                    } else {
                        "already disabled"
                    }
                }
                UserCommand::Enable { .. } => {
                    let changed = auth.enable_user(None, account.id, &cli).await.map_err(|e| e.to_string())?;
                    if changed {
                        "enabled"
                    } else {
                        "was not disabled"
                    }
                }
                UserCommand::Unlock { .. } => {
                    let was = auth.unlock_user(None, account.id, &cli).await.map_err(|e| e.to_string())?;
                    if was {
                        "unlocked"
                    } else {
                        "was not locked (its failures are forgotten)"
                    }
                }
                UserCommand::Delete { .. } => {
                    auth.admin_delete_user(None, account.id, &cli).await.map_err(|e| e.to_string())?;
                    // The deletion reaches roles and profiles through the outbox.
                    stack.outbox.deliver_pending().await.map_err(|e| e.to_string())?;
                    "deleted"
                }
                UserCommand::Mfa(MfaCommand::Reset { .. }) => {
                    if auth.reset_second_factors(account.id, "cli").await.map_err(|e| e.to_string())? {
                        "second factors cleared: the password alone signs in until one is set up again"
                    } else {
                        "had no second factor"
                    }
                }
                UserCommand::Create { .. } | UserCommand::List { .. } => unreachable!("handled above"),
            };
            stack.audit.flush().await;
            println!("{} ({}): {said}", account.email, account.id);
            Ok(())
        }
        Command::Audit { types, email, first } => {
            if !(1..=fafnir_auth::audit::MAX_PAGE).contains(&first) {
                return Err("--first is 1 to 100".into());
            }
            let kinds = types
                .iter()
                .map(|t| fafnir_auth::AuditKind::parse(t).ok_or_else(|| format!("unknown event type `{t}`")))
                .collect::<Result<Vec<_>, _>>()?;
            let stack = open(config).await?;
            let subject = match &email {
                Some(e) => {
                    Some(stack.auth.user_by_email(e).await.map_err(|_| format!("no account with email {e}"))?.id)
                }
                None => None,
            };
            let q = fafnir_auth::AuditQuery { kinds, subject, first, ..Default::default() };
            let (events, _) = stack.audit.list(&q).await.map_err(|e| e.to_string())?;
            for e in events {
                println!(
                    "{}\t{}\tactor {}\tsubject {}\tip {}\t{}",
                    e.at.to_rfc3339(),
                    e.kind,
                    e.actor_id.as_deref().unwrap_or("-"),
                    e.subject_id.as_deref().unwrap_or("-"),
                    e.ip.as_deref().unwrap_or("-"),
                    e.details
                );
            }
            Ok(())
        }
        Command::Role(cmd) => {
            let (email, role_name, grant) = match &cmd {
                RoleCommand::Grant { email, role } => (email, role, true),
                RoleCommand::Revoke { email, role } => (email, role, false),
            };
            let r = role(role_name)?;
            let stack = open(config).await?;
            let account = stack.auth.user_by_email(email).await.map_err(|e| match e {
                fafnir_auth::AuthError::UserNotFound => format!("no account with email {email}"),
                other => other.to_string(),
            })?;
            // The account exists; make sure RBAC knows it (its creation event may be pending).
            stack.outbox.deliver_pending().await.map_err(|e| e.to_string())?;
            let changed =
                if grant { stack.rbac.grant(account.id, &r).await } else { stack.rbac.revoke(account.id, &r).await }
                    .map_err(|e| e.to_string())?;
            let verb = if grant { "granted" } else { "revoked" };
            let note = if changed { "" } else { " (no change)" };
            if changed {
                let kind =
                    if grant { fafnir_auth::AuditKind::RoleGranted } else { fafnir_auth::AuditKind::RoleRevoked };
                let ev = fafnir_auth::AuditEvent::new(kind)
                    .subject(account.id)
                    .detail("role", r.as_str())
                    .detail("by", "cli");
                stack.audit.store(&ev).await.map_err(|e| e.to_string())?;
            }
            println!("{verb} {r} {} {}{note}", if grant { "to" } else { "from" }, account.email);
            Ok(())
        }
        Command::Mail(MailCommand::Test { to }) => {
            let to = fafnir_core::Email::parse(&to).map_err(|e| format!("--to: {e}"))?;
            fafnir_server::telemetry::init_logging(&config.log);
            let mailer = fafnir_auth::mailer_from_config(&config).map_err(|e| e.to_string())?;
            // The templates of the configuration: a broken override shows here too.
            let templates = fafnir_auth::Templates::load(
                &config.product_name,
                config.mail_templates.as_deref().map(std::path::Path::new),
            )
            .map_err(|e| e.to_string())?;
            let mail = templates.render(fafnir_auth::Message::Test, &to, &[]).map_err(|e| e.to_string())?;
            mailer.send(&mail).await.map_err(|e| format!("not sent through {}: {e}", mailer.describe()))?;
            println!("sent a test message to {} through {}", mail.to.as_str(), mailer.describe());
            Ok(())
        }
        Command::Oauth(OauthCommand::Providers) => {
            // Configuration only: no database is opened.
            let providers = fafnir_auth::oauth::Providers::from_config(&config).map_err(|e| e.to_string())?;
            if providers.is_empty() {
                println!("no social login provider is configured (set FAFNIR_OAUTH_<NAME>_CLIENT_ID and _ISSUER, or a preset: google, github, microsoft, gitlab)");
                return Ok(());
            }
            let mut failed = 0;
            for p in providers.check().await {
                let status = match &p.problem {
                    None if p.kind == "oidc" => "discovery ok".to_owned(),
                    None => "endpoints configured (plain OAuth 2.0: nothing to discover)".to_owned(),
                    Some(why) => {
                        failed += 1;
                        format!("UNREACHABLE: {why}")
                    }
                };
                println!(
                    "{} ({}, {})\n  endpoint:     {}\n  callback URL: {}\n  status:       {status}",
                    p.name, p.display_name, p.kind, p.endpoint, p.redirect_uri
                );
            }
            if failed > 0 {
                return Err(format!("{failed} provider(s) cannot be reached"));
            }
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => {
            let stack = open(config).await?;
            let kid = stack.keys.rotate().await.map_err(|e| e.to_string())?;
            let ev = fafnir_auth::AuditEvent::new(fafnir_auth::AuditKind::KeyRotated)
                .detail("kid", kid.to_string())
                .detail("by", "cli");
            stack.audit.store(&ev).await.map_err(|e| e.to_string())?;
            println!("new signing key {kid}; the previous key stays published until its tokens expire");
            Ok(())
        }
    }
}

/// `GET /healthz` over plain HTTP/1.1 on this host, answered 200 within three seconds.
fn healthcheck(addr: std::net::SocketAddr) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::time::Duration;
    // A server bound to every interface is reached on loopback.
    let target = if addr.ip().is_unspecified() {
        let lo: std::net::IpAddr =
            if addr.is_ipv4() { std::net::Ipv4Addr::LOCALHOST.into() } else { std::net::Ipv6Addr::LOCALHOST.into() };
        std::net::SocketAddr::new(lo, addr.port())
    } else {
        addr
    };
    let limit = Duration::from_secs(3);
    let mut conn =
        std::net::TcpStream::connect_timeout(&target, limit).map_err(|e| format!("{target} does not answer: {e}"))?;
    conn.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
    conn.set_write_timeout(Some(limit)).map_err(|e| e.to_string())?;
    write!(conn, "GET /healthz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("{target}: {e}"))?;
    let mut head = [0u8; 64];
    let n = conn.read(&mut head).map_err(|e| format!("{target}: {e}"))?;
    let status = String::from_utf8_lossy(&head[..n]);
    if status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200") {
        println!("ok");
        Ok(())
    } else {
        Err(format!("{target}/healthz answered {}", status.lines().next().unwrap_or("nothing")))
    }
}
