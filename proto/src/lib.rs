//! # fafnir-proto
//!
//! The generated messages, clients and servers of `fafnir.security.v1` and `fafnir.users.v1`
//! (the `.proto` files beside this crate are the contract between services), and what every
//! adapter over them shares:
//!
//! - [`server`]: authenticating calls, reading ids, per-RPC telemetry;
//! - [`client`]: channels, the caller's token and a deadline on each call, retried reads;
//! - [`status`]: errors across the wire both ways, with structured details;
//! - [`events`]: account events delivered between services with internal tokens;
//! - [`codec`]: prost's codec with undecodable messages as INVALID_ARGUMENT.

pub mod client;
pub mod codec;
pub mod events;
pub mod server;
pub mod status;

#[allow(missing_debug_implementations, clippy::all)]
pub mod security {
    pub mod v1 {
        tonic::include_proto!("fafnir.security.v1");
    }
}

#[allow(missing_debug_implementations, clippy::all)]
pub mod users {
    pub mod v1 {
        tonic::include_proto!("fafnir.users.v1");
    }
}

/// The encoded `FileDescriptorSet` of every Fafnir proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/fafnir_descriptor.bin"));
