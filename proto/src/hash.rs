//! The one stable hash of the wire protocol: 64-bit FNV-1a. Clients map a key to a
//! partition with it, and nodes map a consumer group to its `__groups` partition with it,
//! so it must be the same in every build, language and version (not `std`'s
//! `DefaultHasher`, which may change between Rust releases).

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a hash of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}
