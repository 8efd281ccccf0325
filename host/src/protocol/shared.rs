//! The device-visible state of the protocol (PROTOCOL.md §2): the control block, completion slots, and the
//! constants every implementation shares. Defined once in [`crate::abi::ring`] (with compile-time layout
//! asserts, and the C header device languages include); re-exported here.

pub use crate::abi::ring::*;
