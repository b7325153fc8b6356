//! bincode encoding of everything the Raft layer stores or sends, in one place, so the
//! format is chosen once: bincode 2, standard config, through serde.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::keys::Cf;
use crate::storage::{verify_checksum, StorageEngine, StorageError};

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("evlog types always serialize")
}

/// Decodes a value that must fill `bytes` exactly. Garbage (a damaged record, a malformed
/// peer message) is an error, never an abort: a garbled length prefix could otherwise make
/// bincode allocate exabytes. bincode's limit bounds what a value may claim, and nothing
/// legitimate claims more than 16 bytes (a u128) per encoded byte, so the limit grows with
/// the input, in steps (it is a compile-time constant).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, read) = match bytes.len() {
        n if n <= 64 << 10 => decode_within::<T, { 1 << 20 }>(bytes),
        n if n <= 1 << 20 => decode_within::<T, { 16 << 20 }>(bytes),
        n if n <= 16 << 20 => decode_within::<T, { 256 << 20 }>(bytes),
        _ => decode_within::<T, { 1 << 36 }>(bytes),
    }
    .map_err(|e| e.to_string())?;
    if read != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the value",
            bytes.len() - read
        ));
    }
    Ok(value)
}

fn decode_within<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    let config = bincode::config::standard().with_limit::<LIMIT>();
    bincode::serde::decode_from_slice(bytes, config)
}

/// Reads a checksummed record written with `storage::checksummed(&encode(..))`: verifies
/// the checksum and decodes it. A record that fails either is reported as corrupt.
pub fn read_record<T: DeserializeOwned>(
    engine: &dyn StorageEngine,
    cf: Cf,
    key: &[u8],
) -> Result<Option<T>, StorageError> {
    let Some(framed) = engine.get(cf, key)? else {
        return Ok(None);
    };
    let bytes = verify_checksum(cf, key, &framed)?;
    decode(bytes)
        .map(Some)
        .map_err(|reason| StorageError::Corrupt {
            cf: cf.name(),
            key: key.to_vec(),
            reason,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let value = (
            7u64,
            "event".to_string(),
            vec![1u8, 2, 3],
            vec![u64::MAX; 100],
        );
        let decoded: (u64, String, Vec<u8>, Vec<u64>) = decode(&encode(&value)).unwrap();
        assert_eq!(decoded, value);
    }

    #[test]
    fn a_garbled_length_prefix_is_an_error_not_an_allocation() {
        // Goal: a length prefix claiming ~2^62 bytes (a flipped bit, a hostile peer) is
        // refused; without the limit bincode allocates it first and the process aborts.
        let mut garbage = vec![0xfd];
        garbage.extend_from_slice(&(1u64 << 62).to_le_bytes());
        garbage.extend_from_slice(b"short");
        assert!(decode::<Vec<u8>>(&garbage).is_err());
        assert!(decode::<String>(&garbage).is_err());
        assert!(decode::<(u64, Vec<u8>)>(&[[1u8].as_slice(), &garbage].concat()).is_err());
    }
}
