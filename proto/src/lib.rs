//! # fafnir-proto
//!
//! The generated messages, clients and servers of `fafnir.security.v1` and `fafnir.users.v1`.
//! The `.proto` files beside this crate are the contract between services.

pub mod codec;
pub mod support;

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
