//! A browser-like GraphQL client of Fafnir: it keeps the cookies `login` sets, and sends the
//! `fafnir_csrf` cookie's value as `X-CSRF-Token` with mutations, as a page script would.
//! Nothing here depends on Fafnir's crates: any HTTP client can do the same.

use std::sync::Arc;

use reqwest::cookie::{CookieStore, Jar};
use serde_json::{json, Value};

/// A session against one Fafnir origin (`fafnir serve` or `api-gateway`).
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    jar: Arc<Jar>,
    base: String,
}

/// What went wrong: the transport, or GraphQL errors (their `extensions.code` first).
#[derive(Debug)]
pub enum Error {
    Http(reqwest::Error),
    GraphQL { code: String, message: String },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Http(e) => write!(f, "request failed: {e}"),
            Error::GraphQL { code, message } => write!(f, "{code}: {message}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        Error::Http(e)
    }
}

impl Client {
    /// `base` is the origin, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: &str) -> Result<Self, Error> {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder().cookie_provider(jar.clone()).build()?;
        Ok(Client { http, jar, base: base.trim_end_matches('/').to_owned() })
    }

    fn csrf(&self) -> Option<String> {
        let url = self.base.parse().ok()?;
        let cookies = self.jar.cookies(&url)?;
        let cookies = cookies.to_str().ok()?;
        cookies.split("; ").find_map(|c| c.strip_prefix("fafnir_csrf=")).map(str::to_owned)
    }

    /// Runs one operation; returns its `data`, or the first error.
    pub async fn run(&self, query: &str, variables: Value) -> Result<Value, Error> {
        let mut req = self.http.post(format!("{}/graphql", self.base)).json(&json!({
            "query": query,
            "variables": variables,
        }));
        if let Some(token) = self.csrf() {
            req = req.header("x-csrf-token", token);
        }
        let body: Value = req.send().await?.json().await?;
        if let Some(e) = body["errors"].as_array().and_then(|e| e.first()) {
            return Err(Error::GraphQL {
                code: e["extensions"]["code"].as_str().unwrap_or("UNKNOWN").to_owned(),
                message: e["message"].as_str().unwrap_or_default().to_owned(),
            });
        }
        Ok(body["data"].clone())
    }

    /// `login`: the server sets the access, refresh and CSRF cookies in this client's jar.
    pub async fn login(&self, email: &str, password: &str) -> Result<Value, Error> {
        let q = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { user { id email } accessExpiresAt } }";
        Ok(self.run(q, json!({ "e": email, "p": password })).await?["login"].clone())
    }

    /// `me`: account, roles, permissions and profile in one round trip.
    pub async fn me(&self) -> Result<Value, Error> {
        let q = "{ me { user { id email emailVerified createdAt } roles permissions profile { displayName locale timezone } } }";
        Ok(self.run(q, json!({})).await?["me"].clone())
    }

    /// A mutation by cookie: the CSRF header goes with it (see [`Client::run`]).
    pub async fn set_display_name(&self, name: &str) -> Result<Value, Error> {
        let q = "mutation($n: String) { updateProfile(input: {displayName: $n}) { displayName } }";
        Ok(self.run(q, json!({ "n": name })).await?["updateProfile"].clone())
    }

    pub async fn logout(&self) -> Result<(), Error> {
        self.run("mutation { logout }", json!({})).await.map(|_| ())
    }
}
