//! evlog's wire protocol: the client API (`evlog.v1`: EventLog and Admin services, the
//! stable `ErrorCode` enum) and the node-to-node Raft transport (`raft.v1`).
//!
//! The code is generated at build time from the `.proto` files next to this crate, for
//! real tonic or for the madsim simulator depending on `cfg(madsim)`.

#![allow(clippy::all, missing_docs)]

pub mod evlog {
    pub mod v1 {
        tonic::include_proto!("evlog.v1");
    }
}

pub mod raft {
    pub mod v1 {
        tonic::include_proto!("raft.v1");
    }
}
