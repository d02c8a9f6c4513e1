//! Generated protobuf types, gRPC clients and servers for every Sustain API, and the
//! encoded file descriptor set that the services hand to server reflection.
#![allow(unreachable_pub, missing_debug_implementations, clippy::unwrap_used)]

/// Encoded `FileDescriptorSet` of every file under `proto/` (and its imports).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sustain_descriptor.bin"));

pub mod registry {
    pub mod v1 {
        tonic::include_proto!("sustain.registry.v1");
    }
}

pub mod programs {
    pub mod v1 {
        tonic::include_proto!("sustain.programs.v1");
    }
}

pub mod ledger {
    pub mod v1 {
        tonic::include_proto!("sustain.ledger.v1");
    }
}

pub mod gateway {
    pub mod v1 {
        tonic::include_proto!("sustain.gateway.v1");
    }
}

pub mod sync {
    pub mod v1 {
        tonic::include_proto!("sustain.sync.v1");
    }
}
