//! What the gateway remembers between requests: parsed and validated documents (clients send
//! the same few operations over and over), and automatic persisted queries (APQ: a client sends
//! the SHA-256 of a query instead of the query, and the query once when the gateway does not
//! know it yet).

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerResult, ValidationResult, Value, Variables};
use fafnir_auth::sha256_hex;
use fafnir_core::cache::TtlCache;

/// Distinct documents remembered; emptied when full.
pub const DOCUMENTS: usize = 1024;

/// The longest query text remembered (as a document or a persisted query): a few hundred
/// fields. Longer ones run, but are parsed each time; so the caches stay small whatever clients
/// send (at most `DOCUMENTS` × this much text, and only documents that validated).
pub const MAX_CACHED_QUERY: usize = 8 * 1024;

#[derive(Clone)]
struct Entry {
    doc: ExecutableDocument,
    /// The validation outcome of the document sent without variables. With variables it is not
    /// reused: the complexity of a field can depend on its arguments (`users(first: $n)`).
    validation: Option<ValidationResult>,
}

/// Parsed documents that validated, and the outcome of their validation, by query text.
/// Validation depends on the document and the schema only when no variables are sent, so only
/// then is its outcome reused; only documents that validated are remembered.
#[derive(Clone, Debug)]
pub struct DocumentCache(Arc<TtlCache<String, Entry>>);

impl Default for DocumentCache {
    fn default() -> Self {
        Self(Arc::new(TtlCache::new(DOCUMENTS)))
    }
}

impl ExtensionFactory for DocumentCache {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentCacheExt { cache: self.clone(), state: Mutex::new(State::default()) })
    }
}

/// What one request learnt at parsing, for validation.
#[derive(Default)]
struct State {
    /// A remembered validation outcome that applies to this request.
    validated: Option<ValidationResult>,
    /// To remember once validation succeeds: the query, its document if it was not cached yet,
    /// and whether the request had no variables.
    remember: Option<(String, Option<ExecutableDocument>, bool)>,
}

/// One request's view of the cache (the factory makes one per request).
struct DocumentCacheExt {
    cache: DocumentCache,
    state: Mutex<State>,
}

impl DocumentCacheExt {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
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
        let no_variables = variables.is_empty();
        if let Some(Entry { doc, validation }) = self.cache.0.remembered(query) {
            let mut state = self.state();
            match validation {
                Some(v) if no_variables => state.validated = Some(v),
                None if no_variables => state.remember = Some((query.to_owned(), None, true)),
                _ => {}
            }
            return Ok(doc);
        }
        let doc = next.run(ctx, query, variables).await?;
        if query.len() <= MAX_CACHED_QUERY {
            self.state().remember = Some((query.to_owned(), Some(doc.clone()), no_variables));
        }
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<async_graphql::ServerError>> {
        if let Some(v) = self.state().validated {
            return Ok(v);
        }
        let v = next.run(ctx).await?;
        let remember = self.state().remember.take();
        if let Some((query, doc, no_variables)) = remember {
            let validation = no_variables.then_some(v);
            let doc = doc.or_else(|| self.cache.0.remembered(&query).map(|e| e.doc));
            if let Some(doc) = doc {
                self.cache.0.remember(query, Entry { doc, validation });
            }
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
#[derive(Clone, Debug)]
pub struct PersistedQueries(Arc<TtlCache<String, String>>);

impl Default for PersistedQueries {
    fn default() -> Self {
        Self(Arc::new(TtlCache::new(DOCUMENTS)))
    }
}

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
        if request.query.is_empty() {
            request.query = self.0.remembered(&hash).ok_or(ApqError::NotFound)?;
            Ok(())
        } else {
            // Hash before taking the lock (up to 64 KiB of text).
            if sha256_hex(&request.query) != hash {
                return Err(ApqError::Invalid("sha256Hash does not match the query"));
            }
            // A long query runs, but is not remembered: the client keeps sending it whole.
            if request.query.len() <= MAX_CACHED_QUERY {
                self.0.remember(hash, request.query.clone());
            }
            Ok(())
        }
    }
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
