//! evlog's wire protocol: the client API (`evlog.v1`: EventLog and Admin services, the
//! stable `ErrorCode` enum) and the node-to-node Raft transport (`raft.v1`).
//!
//! [`limits`] holds the size rules both sides share (how an event's bytes are counted).
//!
//! The code is generated at build time from the `.proto` files next to this crate, for
//! real tonic or for the madsim simulator depending on `cfg(madsim)`.

pub mod hash;
pub mod limits;

#[allow(clippy::all, missing_docs)]
pub mod evlog {
    pub mod v1 {
        tonic::include_proto!("evlog.v1");
    }
}

#[allow(clippy::all, missing_docs)]
pub mod raft {
    pub mod v1 {
        tonic::include_proto!("raft.v1");
    }
}
