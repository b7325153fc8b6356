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

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map_err(|e| e.to_string())?;
    if read != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the value",
            bytes.len() - read
        ));
    }
    Ok(value)
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
