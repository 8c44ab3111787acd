//! What the gateway remembers between requests: parsed and validated documents (clients send
//! the same few operations over and over), and automatic persisted queries (APQ: a client sends
//! the SHA-256 of a query instead of the query, and the query once when the gateway does not
//! know it yet).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerResult, ValidationResult, Value, Variables};

/// Distinct documents remembered (each a few KB); emptied when full.
pub const DOCUMENTS: usize = 1024;

#[derive(Default)]
struct Entry {
    doc: Option<ExecutableDocument>,
    validation: Option<ValidationResult>,
}

/// Parsed documents and the outcome of their validation, by query text. Validation depends on
/// the document and the schema only (variables are checked at execution), so a document that
/// validated once validates again: only successes are remembered.
#[derive(Clone, Default)]
pub struct DocumentCache(Arc<Mutex<HashMap<String, Entry>>>);

impl std::fmt::Debug for DocumentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentCache").field("documents", &self.with(|m| m.len())).finish()
    }
}

impl std::fmt::Debug for PersistedQueries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().unwrap_or_else(|p| p.into_inner()).len();
        f.debug_struct("PersistedQueries").field("queries", &n).finish()
    }
}

impl DocumentCache {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ExtensionFactory for DocumentCache {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentCacheExt { cache: self.clone(), query: Mutex::new(None) })
    }
}

/// One request's view of the cache (the factory makes one per request).
struct DocumentCacheExt {
    cache: DocumentCache,
    query: Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl Extension for DocumentCacheExt {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        *self.query.lock().unwrap_or_else(|p| p.into_inner()) = Some(query.to_owned());
        if let Some(doc) = self.cache.with(|m| m.get(query).and_then(|e| e.doc.clone())) {
            return Ok(doc);
        }
        let doc = next.run(ctx, query, variables).await?;
        self.cache.with(|m| {
            if m.len() >= DOCUMENTS {
                m.clear();
            }
            m.entry(query.to_owned()).or_default().doc = Some(doc.clone());
        });
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<async_graphql::ServerError>> {
        let query = self.query.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(q) = &query {
            if let Some(v) = self.cache.with(|m| m.get(q).and_then(|e| e.validation)) {
                return Ok(v);
            }
        }
        let v = next.run(ctx).await?;
        if let Some(q) = query {
            self.cache.with(|m| {
                if let Some(e) = m.get_mut(&q) {
                    e.validation = Some(v);
                }
            });
        }
        Ok(v)
    }
}

/// Why a persisted-query request cannot run.
#[derive(Debug, PartialEq, Eq)]
pub enum ApqError {
    /// The hash is unknown here: the client sends the query with its hash (Apollo's protocol).
    NotFound,
    /// The `persistedQuery` extension is malformed, or its hash does not match the query.
    Invalid(&'static str),
}

/// Automatic persisted queries: query text by its SHA-256 (hex). Only a query whose hash the
/// gateway computed itself is stored, so a client cannot plant a query under another's hash.
#[derive(Clone, Default)]
pub struct PersistedQueries(Arc<Mutex<HashMap<String, String>>>);

impl PersistedQueries {
    /// Resolves `request`'s `persistedQuery` extension, if any: fills in the query from the
    /// hash, or remembers the query under its hash. Done before anything looks at the query (the
    /// CSRF gate must see a persisted mutation as a mutation).
    pub fn resolve(&self, request: &mut async_graphql::Request) -> Result<(), ApqError> {
        let Some(ext) = request.extensions.0.remove("persistedQuery") else { return Ok(()) };
        let Value::Object(fields) = ext else { return Err(ApqError::Invalid("persistedQuery must be an object")) };
        if fields.get("version") != Some(&Value::from(1)) {
            return Err(ApqError::Invalid("only persistedQuery version 1 is supported"));
        }
        let Some(Value::String(hash)) = fields.get("sha256Hash") else {
            return Err(ApqError::Invalid("persistedQuery needs sha256Hash"));
        };
        let hash = hash.to_ascii_lowercase();
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if request.query.is_empty() {
            match map.get(&hash) {
                Some(q) => {
                    request.query = q.clone();
                    Ok(())
                }
                None => Err(ApqError::NotFound),
            }
        } else {
            if sha256_hex(&request.query) != hash {
                return Err(ApqError::Invalid("sha256Hash does not match the query"));
            }
            if map.len() >= DOCUMENTS {
                map.clear();
            }
            map.insert(hash, request.query.clone());
            Ok(())
        }
    }
}

fn sha256_hex(s: &str) -> String {
    use std::fmt::Write;
    let digest = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    digest.as_ref().iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apq(query: &str, hash: &str) -> async_graphql::Request {
        let mut r = async_graphql::Request::new(query);
        let mut pq = async_graphql::indexmap::IndexMap::new();
        pq.insert(async_graphql::Name::new("version"), Value::from(1));
        pq.insert(async_graphql::Name::new("sha256Hash"), Value::from(hash));
        r.extensions.0.insert("persistedQuery".into(), Value::Object(pq));
        r
    }

    #[test]
    fn persisted_queries_follow_apollos_protocol() {
        let p = PersistedQueries::default();
        let q = "{ health { status } }";
        let h = sha256_hex(q);
        assert_eq!(p.resolve(&mut apq("", &h)), Err(ApqError::NotFound), "unknown hash: send the query");
        assert_eq!(
            p.resolve(&mut apq(q, &sha256_hex("{ other }"))),
            Err(ApqError::Invalid("sha256Hash does not match the query"))
        );
        assert_eq!(p.resolve(&mut apq(q, &h)), Ok(()));
        let mut later = apq("", &h);
        assert_eq!(p.resolve(&mut later), Ok(()));
        assert_eq!(later.query, q, "the hash alone now brings the query");
        let mut plain = async_graphql::Request::new(q);
        assert_eq!(p.resolve(&mut plain), Ok(()), "requests without the extension pass through");
    }
}
