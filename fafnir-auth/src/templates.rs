//! The messages Fafnir sends, as templates: plain text (`NAME.txt`, whose first line is the
//! subject) and HTML (`NAME.html`, which extends `layout.html`), rendered with MiniJinja.
//!
//! The defaults are built in; a directory (`FAFNIR_MAIL_TEMPLATES`) may hold any of the files
//! to replace them one by one (the layout alone, to brand every message). Every template is
//! compiled and rendered once with sample values when the set is loaded, so a broken override
//! stops the start with the file named, not the first reset mail. HTML templates escape every
//! value; undefined variables are errors.

use std::path::Path;

use fafnir_core::Email;
use minijinja::{Environment, UndefinedBehavior, Value};

use crate::mail::Mail;

/// The messages, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    /// To a new account's address (and on request): `link`, `lifetime`.
    VerifyEmail,
    /// `link`, `lifetime`.
    ResetPassword,
    /// To the new address of an address change: `link`, `lifetime`.
    ChangeEmail,
    /// To the old address when a change is requested: `new_email`.
    EmailChangeRequested,
    /// To the old address once the change is confirmed: `new_email`.
    EmailChanged,
    /// After a change or a reset of the password: `reset` (bool).
    PasswordChanged,
    /// When the throttle locks the account: `wait` ("30 seconds").
    AccountLocked,
    /// When a second factor is added: `method`.
    SecondFactorAdded,
    /// When a second factor is removed: `method`.
    SecondFactorRemoved,
    /// When a sign-in provider is linked to the account: `provider` (its display name).
    IdentityLinked,
    /// When the account is deleted (by its owner or an administrator).
    AccountDeleted,
    /// `fafnir mail test`.
    Test,
}

impl Message {
    pub const ALL: [Message; 12] = [
        Message::VerifyEmail,
        Message::ResetPassword,
        Message::ChangeEmail,
        Message::EmailChangeRequested,
        Message::EmailChanged,
        Message::PasswordChanged,
        Message::AccountLocked,
        Message::SecondFactorAdded,
        Message::SecondFactorRemoved,
        Message::IdentityLinked,
        Message::AccountDeleted,
        Message::Test,
    ];

    /// The file name without extension.
    pub fn name(self) -> &'static str {
        match self {
            Message::VerifyEmail => "verify_email",
            Message::ResetPassword => "reset_password",
            Message::ChangeEmail => "change_email",
            Message::EmailChangeRequested => "email_change_requested",
            Message::EmailChanged => "email_changed",
            Message::PasswordChanged => "password_changed",
            Message::AccountLocked => "account_locked",
            Message::SecondFactorAdded => "second_factor_added",
            Message::SecondFactorRemoved => "second_factor_removed",
            Message::IdentityLinked => "identity_linked",
            Message::AccountDeleted => "account_deleted",
            Message::Test => "test",
        }
    }

    fn defaults(self) -> (&'static str, &'static str) {
        macro_rules! pair {
            ($n:literal) => {
                (
                    include_str!(concat!("../templates/", $n, ".txt")),
                    include_str!(concat!("../templates/", $n, ".html")),
                )
            };
        }
        match self {
            Message::VerifyEmail => pair!("verify_email"),
            Message::ResetPassword => pair!("reset_password"),
            Message::ChangeEmail => pair!("change_email"),
            Message::EmailChangeRequested => pair!("email_change_requested"),
            Message::EmailChanged => pair!("email_changed"),
            Message::PasswordChanged => pair!("password_changed"),
            Message::AccountLocked => pair!("account_locked"),
            Message::SecondFactorAdded => pair!("second_factor_added"),
            Message::SecondFactorRemoved => pair!("second_factor_removed"),
            Message::IdentityLinked => pair!("identity_linked"),
            Message::AccountDeleted => pair!("account_deleted"),
            Message::Test => pair!("test"),
        }
    }

    /// Values for the check at load time.
    fn sample(self) -> Vec<(&'static str, Value)> {
        match self {
            Message::VerifyEmail | Message::ResetPassword | Message::ChangeEmail => {
                vec![("link", Value::from("https://example.com/x?token=t")), ("lifetime", Value::from("1 hour"))]
            }
            Message::EmailChangeRequested | Message::EmailChanged => vec![("new_email", Value::from("n…@example.com"))],
            Message::PasswordChanged => vec![("reset", Value::from(true))],
            Message::AccountLocked => vec![("wait", Value::from("30 seconds"))],
            Message::SecondFactorAdded => vec![("method", Value::from("An authenticator app"))],
            Message::SecondFactorRemoved => vec![("method", Value::from("An authenticator app"))],
            Message::IdentityLinked => vec![("provider", Value::from("Google"))],
            Message::AccountDeleted | Message::Test => vec![],
        }
    }
}

const LAYOUT: &str = include_str!("../templates/layout.html");

/// A template set could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("mail template {file}: {reason}")]
pub struct TemplateError {
    pub file: String,
    pub reason: String,
}

/// The loaded templates. Cheap to share (`Arc` it).
pub struct Templates {
    env: Environment<'static>,
    product: String,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").field("product", &self.product).finish_non_exhaustive()
    }
}

impl Templates {
    /// The built-in templates.
    pub fn builtin(product: &str) -> Self {
        match Self::load(product, None) {
            Ok(t) => t,
            // The built-in set is checked by the tests; this cannot fail at run time.
            Err(e) => unreachable!("built-in mail templates are broken: {e}"),
        }
    }

    /// The built-in templates, with any file of `dir` replacing its namesake. Every template is
    /// compiled and rendered once with sample values.
    pub fn load(product: &str, dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let read = |file: &str, default: &'static str| -> Result<String, TemplateError> {
            let Some(dir) = dir else { return Ok(default.to_owned()) };
            let path = dir.join(file);
            match std::fs::read_to_string(&path) {
                Ok(s) => Ok(s),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(default.to_owned()),
                Err(e) => Err(TemplateError { file: path.display().to_string(), reason: e.to_string() }),
            }
        };
        let add = |env: &mut Environment<'static>, file: String, src: String| {
            env.add_template_owned(file.clone(), src).map_err(|e| TemplateError { file, reason: e.to_string() })
        };
        if let Some(d) = dir {
            if !d.is_dir() {
                return Err(TemplateError { file: d.display().to_string(), reason: "not a directory".into() });
            }
        }
        let layout = read("layout.html", LAYOUT)?;
        add(&mut env, "layout.html".into(), layout)?;
        for m in Message::ALL {
            let (txt, html) = m.defaults();
            let (t, h) = (format!("{}.txt", m.name()), format!("{}.html", m.name()));
            let t_src = read(&t, txt)?;
            let h_src = read(&h, html)?;
            add(&mut env, t, t_src)?;
            add(&mut env, h, h_src)?;
        }
        let this = Self { env, product: product.to_owned() };
        let sample_to = Email::parse("someone@example.com")
            .map_err(|e| TemplateError { file: "sample".into(), reason: e.to_string() })?;
        for m in Message::ALL {
            let vars = m.sample();
            this.render(m, &sample_to, &vars)?;
        }
        Ok(this)
    }

    /// The product name messages are signed with.
    pub fn product(&self) -> &str {
        &self.product
    }

    /// Renders `message` to `to` with `vars` (plus `product`, `to` and, for the HTML,
    /// `subject`).
    pub fn render(&self, message: Message, to: &Email, vars: &[(&str, Value)]) -> Result<Mail, TemplateError> {
        let mut ctx: Vec<(&str, Value)> =
            vec![("product", Value::from(self.product.as_str())), ("to", Value::from(to.as_str()))];
        ctx.extend(vars.iter().cloned());
        let render = |file: String, ctx: &[(&str, Value)]| {
            let map: std::collections::BTreeMap<&str, Value> = ctx.iter().cloned().collect();
            self.env
                .get_template(&file)
                .and_then(|t| t.render(Value::from_serialize(&map)))
                .map_err(|e| TemplateError { file, reason: e.to_string() })
        };
        let text = render(format!("{}.txt", message.name()), &ctx)?;
        let (subject, body) = match text.split_once('\n') {
            Some((s, rest)) => (s.trim().to_owned(), rest.trim_start_matches(['\r', '\n']).to_owned()),
            None => (text.trim().to_owned(), String::new()),
        };
        if subject.is_empty() {
            return Err(TemplateError {
                file: format!("{}.txt", message.name()),
                reason: "the first line (the subject) is empty".into(),
            });
        }
        ctx.push(("subject", Value::from(subject.as_str())));
        let html = render(format!("{}.html", message.name()), &ctx)?;
        Ok(Mail { to: to.clone(), subject, text: body, html })
    }
}

/// "24 hours", "30 minutes": a lifetime as a person reads it.
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs().max(1);
    let (n, unit) = if s >= 3600 && s.is_multiple_of(3600) {
        (s / 3600, "hour")
    } else if s >= 60 {
        (s.div_ceil(60), "minute")
    } else {
        (s, "second")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to() -> Email {
        Email::parse("ada@example.com").expect("address")
    }

    #[test]
    fn the_builtin_templates_render_with_subject_text_and_html() {
        let t = Templates::builtin("Acme");
        let m = t
            .render(
                Message::ResetPassword,
                &to(),
                &[
                    ("link", Value::from("https://a.example/reset-password?token=abc")),
                    ("lifetime", Value::from("30 minutes")),
                ],
            )
            .expect("renders");
        assert_eq!(m.subject, "Reset your Acme password");
        assert!(m.text.contains("https://a.example/reset-password?token=abc"), "{}", m.text);
        assert!(m.text.contains("30 minutes"));
        // Escaped as any value in HTML (`/` is `&#x2f;`), which browsers read back as the link.
        assert!(m.html.contains("href=\"https:&#x2f;&#x2f;a.example&#x2f;reset-password?token=abc\""), "{}", m.html);
        assert!(m.html.contains("<title>Reset your Acme password</title>"));
        assert!(!m.text.starts_with('\n'));
    }

    #[test]
    fn values_are_escaped_in_html_and_not_in_text() {
        let t = Templates::builtin("A & <B>");
        let m = t.render(Message::Test, &to(), &[]).expect("renders");
        assert!(m.html.contains("A &amp; &lt;B&gt;"), "{}", m.html);
        assert!(!m.html.contains("<B>"));
        assert!(m.text.contains("A & <B>"));
    }

    #[test]
    fn a_directory_replaces_single_files_and_a_broken_one_is_named() {
        let dir = std::env::temp_dir().join(format!("fafnir-tpl-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("test.txt"), "Hi from {{ product }}\n\nCustom body for {{ to }}.").expect("write");
        let t = Templates::load("Acme", Some(&dir)).expect("loads");
        let m = t.render(Message::Test, &to(), &[]).expect("renders");
        assert_eq!(m.subject, "Hi from Acme");
        assert_eq!(m.text, "Custom body for ada@example.com.");
        // Not overridden: the built-in HTML.
        assert!(m.html.contains("This is a test message from Acme"));

        std::fs::write(
            dir.join("verify_email.html"),
            "{% extends \"layout.html\" %}{% block content %}{{ nope }}{% endblock %}",
        )
        .expect("write");
        let e = Templates::load("Acme", Some(&dir)).expect_err("undefined variable refused");
        assert!(e.to_string().contains("verify_email.html"), "{e}");
        std::fs::write(dir.join("verify_email.html"), "{% if %}").expect("write");
        let e = Templates::load("Acme", Some(&dir)).expect_err("syntax error refused");
        assert!(e.to_string().contains("verify_email.html"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(Templates::load("Acme", Some(&dir)).is_err(), "a missing directory is refused");
    }

    #[test]
    fn lifetimes_read_naturally() {
        use std::time::Duration;
        assert_eq!(human_duration(Duration::from_secs(24 * 3600)), "24 hours");
        assert_eq!(human_duration(Duration::from_secs(3600)), "1 hour");
        assert_eq!(human_duration(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(human_duration(Duration::from_secs(30)), "30 seconds");
        assert_eq!(human_duration(Duration::from_secs(60)), "1 minute");
    }
}
