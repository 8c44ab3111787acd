//! The GraphQL schema: resolvers that parse their arguments, check the caller, call one service
//! trait (or auth-service's REST API) and map the answer. Nothing here knows whether a service
//! is in this process or across the network.

mod context;
mod loaders;
mod mutation;
mod query;
mod types;

use async_graphql::{EmptySubscription, Schema};

pub use context::{RequestInfo, Services};
pub use loaders::{roles_loader, RolesLoader};
pub use mutation::Mutation;
pub use query::Query;
pub use types::*;

/// Deepest selection nesting accepted. Fafnir's own types nest four deep at most and none is
/// recursive, so this bounds introspection: 15 admits the introspection query GraphiQL sends
/// (graphql-js unwraps type references nine `ofType`s deep) and nothing deeper.
pub const MAX_DEPTH: usize = 15;
/// Largest query cost accepted: one per field, [`COST_SERVICE`] for a field that calls a
/// service, [`COST_PASSWORD`] for one that hashes a password; `users(first: n)` multiplies its
/// selection by `n`. So one request can make at most a few dozen service calls and
/// [`MAX_COMPLEXITY`] / [`COST_PASSWORD`] password checks.
pub const MAX_COMPLEXITY: usize = 1000;
/// The cost of a field that calls a service.
pub const COST_SERVICE: usize = 25;
/// The cost of a field that checks or sets a password (Argon2id, tens of milliseconds of CPU).
pub const COST_PASSWORD: usize = 250;

pub type GatewaySchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema with its limits; `introspection` false refuses `__schema` and `__type`.
pub fn build(services: Services, introspection: bool) -> GatewaySchema {
    let b = Schema::build(Query, Mutation, EmptySubscription)
        .data(services)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(32)
        .limit_directives(8)
        .extension(super::cache::DocumentCache::default());
    if introspection {
        b.finish()
    } else {
        b.disable_introspection().finish()
    }
}
