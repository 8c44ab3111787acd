//! Outgoing mail: what a message is, and the [`Mailer`]s that send it — SMTP through `lettre`
//! (feature `smtp`), or the log when no SMTP server is configured (so that a developer running
//! `fafnir serve` with no setup still sees the links).
//!
//! A message is built from typed parts only: the recipient is an [`Email`] (parsed, ASCII, no
//! line breaks), the subject is one line, and display names are encoded by `lettre`, so nothing
//! a user typed can add a header.

use std::fmt;
use std::sync::Arc;

use fafnir_core::{Config, Email};

/// One message: plain text and HTML alternatives of the same content.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: Email,
    /// One line: line breaks are replaced by spaces when the message is built.
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl fmt::Debug for Mail {
    // The body may carry a single-use link: never in Debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail").field("to", &self.to).field("subject", &self.subject).finish_non_exhaustive()
    }
}

impl Mail {
    /// The subject as sent: control characters (line breaks included) become spaces.
    pub fn one_line_subject(&self) -> String {
        self.subject.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
    }
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The mail settings are wrong (an unparsable SMTP URL or `From`): fix the configuration.
    #[error("mail configuration: {0}")]
    Config(String),
    /// The server refused the message for good (a 5xx answer): retrying will not help.
    #[error("the mail server refused the message: {0}")]
    Rejected(String),
    /// The server could not be reached or failed for now: retry later.
    #[error("the mail server is unavailable: {0}")]
    Unavailable(String),
}

impl MailError {
    /// Whether sending again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, MailError::Unavailable(_))
    }

    /// Whether the failure is the settings' (the server, the credentials or TLS), not the
    /// message's: every other message would fail the same way until an operator fixes them.
    pub fn is_settings(&self) -> bool {
        matches!(self, MailError::Config(_))
    }
}

/// Sends messages.
#[async_trait::async_trait]
pub trait Mailer: Send + Sync + fmt::Debug {
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;

    /// A short description for logs and `fafnir mail test` (never with a password).
    fn describe(&self) -> String;
}

/// Writes each message to the log (at `info`, target `fafnir::mail`) instead of sending it: the
/// development default when no SMTP server is configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogMailer;

#[async_trait::async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        tracing::info!(
            target: "fafnir::mail",
            to = %mail.to.as_str(),
            subject = %mail.one_line_subject(),
            "mail not sent (no FAFNIR_SMTP_URL); its text:\n{}",
            mail.text
        );
        Ok(())
    }

    fn describe(&self) -> String {
        "the log (FAFNIR_SMTP_URL is not set)".into()
    }
}

/// The mailer the configuration asks for: SMTP when `smtp_url` is set (needs the `smtp`
/// feature), else the log.
pub fn mailer_from_config(config: &Config) -> Result<Arc<dyn Mailer>, MailError> {
    match config.smtp_url.as_deref() {
        None | Some("") => Ok(Arc::new(LogMailer)),
        #[cfg(feature = "smtp")]
        Some(url) => Ok(Arc::new(smtp::SmtpMailer::from_url(url, &config.mail_from)?)),
        #[cfg(not(feature = "smtp"))]
        Some(_) => Err(MailError::Config("FAFNIR_SMTP_URL is set, but fafnir-auth was built without `smtp`".into())),
    }
}

#[cfg(feature = "smtp")]
pub mod smtp {
    //! SMTP through `lettre`, over rustls.

    use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    use super::{Mail, MailError, Mailer};

    /// Longest one message may take to send, all SMTP commands included.
    pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

    /// Sends through one SMTP server. Connections are pooled by `lettre`.
    #[derive(Clone)]
    pub struct SmtpMailer {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
        /// `smtp://host:port` without credentials, for logs.
        shown: String,
    }

    impl std::fmt::Debug for SmtpMailer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SmtpMailer").field("server", &self.shown).finish_non_exhaustive()
        }
    }

    fn loopback(host: &str) -> bool {
        host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    impl SmtpMailer {
        /// `smtp://[user:pass@]host[:port]`: STARTTLS, required — except on a loopback host
        /// (a development mail catcher), where it is used if offered. `smtps://…`: TLS from the
        /// first byte (port 465 by default). `from` is the sender, such as
        /// `Fafnir <no-reply@example.com>`. Call it within a Tokio runtime (the connection pool
        /// runs a task).
        pub fn from_url(url: &str, from: &str) -> Result<Self, MailError> {
            let bad = |why: &str| MailError::Config(format!("FAFNIR_SMTP_URL {why}"));
            let u = url::Url::parse(url).map_err(|_| bad("must be a URL such as smtp://user:pass@host:587"))?;
            // A path, query or fragment means the URL was not read as meant (an unencoded `/`
            // or `#` in a password, say): refuse it rather than connect somewhere else.
            if !matches!(u.path(), "" | "/") || u.query().is_some() || u.fragment().is_some() {
                return Err(bad("must be smtp(s)://user:pass@host:port with nothing after the port; percent-encode `/`, `?`, `#` and `@` in the user and password"));
            }
            let host = u.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("has no host"))?.to_owned();
            // `smtp+insecure://` (development only, e.g. a mail catcher in Compose): STARTTLS
            // when offered, plain text otherwise, as `smtp://` to a loopback host is.
            let (implicit, insecure) = match u.scheme() {
                "smtp" => (false, false),
                "smtps" => (true, false),
                "smtp+insecure" => (false, true),
                _ => return Err(bad("must start with smtp:// or smtps:// (smtp+insecure:// in development)")),
            };
            let port = u.port().unwrap_or(if implicit { 465 } else { 587 });
            let tls_host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            let params = TlsParameters::new(tls_host).map_err(|e| bad(&format!("TLS setup failed: {e}")))?;
            let tls = if implicit {
                Tls::Wrapper(params)
            } else if insecure || loopback(&host) {
                Tls::Opportunistic(params)
            } else {
                Tls::Required(params)
            };
            let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone()).port(port).tls(tls);
            if !u.username().is_empty() {
                let decode = |s: &str| percent_decode(s).ok_or_else(|| bad("has a malformed user or password"));
                let user = decode(u.username())?;
                let pass = decode(u.password().unwrap_or(""))?;
                builder = builder.credentials(Credentials::new(user, pass));
            }
            let from: Mailbox = from.parse().map_err(|e| {
                MailError::Config(format!(
                    "FAFNIR_MAIL_FROM is not a mailbox such as `Fafnir <no-reply@example.com>`: {e}"
                ))
            })?;
            let shown = format!("{}://{host}:{port}", u.scheme());
            Ok(Self { transport: builder.timeout(Some(std::time::Duration::from_secs(15))).build(), from, shown })
        }

        fn message(&self, mail: &Mail) -> Result<Message, MailError> {
            let to: Mailbox = mail
                .to
                .as_str()
                .parse()
                .map_err(|e| MailError::Rejected(format!("recipient {}: {e}", mail.to.as_str())))?;
            Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(mail.one_line_subject())
                .multipart(
                    MultiPart::alternative()
                        .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(mail.text.clone()))
                        .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(mail.html.clone())),
                )
                .map_err(|e| MailError::Rejected(format!("cannot build the message: {e}")))
        }
    }

    fn percent_decode(s: &str) -> Option<String> {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).ok()
    }

    #[async_trait::async_trait]
    impl Mailer for SmtpMailer {
        async fn send(&self, mail: &Mail) -> Result<(), MailError> {
            let message = self.message(mail)?;
            // A server that stops answering mid-conversation must not hold the sender for long.
            let sent = tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message))
                .await
                .map_err(|_| MailError::Unavailable(format!("no answer within {}s", SEND_TIMEOUT.as_secs())))?;
            match sent {
                Ok(_) => Ok(()),
                // Refused credentials, or TLS demanded: the settings' fault, not the message's.
                Err(e)
                    if e.status().is_some_and(|c| matches!(c.to_string().as_str(), "530" | "534" | "535" | "538")) =>
                {
                    Err(MailError::Config(e.to_string()))
                }
                Err(e) if e.is_permanent() => Err(MailError::Rejected(e.to_string())),
                // The server and these settings cannot work together (no common authentication
                // mechanism, STARTTLS required but not offered): a configuration to fix.
                Err(e) if e.is_client() || e.is_tls() => Err(MailError::Config(e.to_string())),
                Err(e) => Err(MailError::Unavailable(e.to_string())),
            }
        }

        fn describe(&self) -> String {
            format!("SMTP at {}", self.shown)
        }
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]

        use super::*;

        #[tokio::test]
        async fn urls_are_checked_and_credentials_never_shown() {
            let m =
                SmtpMailer::from_url("smtp://ada:s%40cret@mail.example.com", "Fafnir <no-reply@example.com>").unwrap();
            assert_eq!(m.describe(), "SMTP at smtp://mail.example.com:587");
            assert!(!format!("{m:?}").contains("cret"));
            let m = SmtpMailer::from_url("smtps://mail.example.com", "no-reply@example.com").unwrap();
            assert_eq!(m.describe(), "SMTP at smtps://mail.example.com:465");
            // Development only: a catcher without TLS on another host (Compose's Mailpit).
            let m = SmtpMailer::from_url("smtp+insecure://mailpit:1025", "no-reply@example.com").unwrap();
            assert_eq!(m.describe(), "SMTP at smtp+insecure://mailpit:1025");
            for bad in [
                "http://mail.example.com",
                "not a url",
                "smtp://",
                "smtp://ada:12/34@mail.example.com",
                "smtp://mail.example.com:25?tls=none",
                "smtp://ada:pa#ss@mail.example.com",
            ] {
                assert!(matches!(SmtpMailer::from_url(bad, "a@example.com"), Err(MailError::Config(_))), "{bad}");
            }
            assert!(matches!(
                SmtpMailer::from_url("smtp://127.0.0.1:2525", "not a mailbox <"),
                Err(MailError::Config(_))
            ));
            assert_eq!(percent_decode("s%40cret"), Some("s@cret".into()));
            assert_eq!(percent_decode("%zz"), None);
        }

        #[tokio::test]
        async fn a_subject_cannot_add_a_header() {
            let m = SmtpMailer::from_url("smtp://127.0.0.1:2525", "Fafnir <no-reply@example.com>").unwrap();
            let mail = Mail {
                to: fafnir_core::Email::parse("ada@example.com").unwrap(),
                subject: "Hello\r\nBcc: eve@example.com".into(),
                text: "text".into(),
                html: "<p>html</p>".into(),
            };
            let raw = String::from_utf8(m.message(&mail).unwrap().formatted()).unwrap();
            assert!(raw.contains("Subject: Hello  Bcc: eve@example.com\r\n"), "{raw}");
            assert!(!raw.contains("\r\nBcc:"), "{raw}");
        }
    }
}
