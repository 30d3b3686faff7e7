//! Identifiers derived from a seed, so that images are byte-reproducible.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Bytes derived from a seed for one purpose: SHA-256(seed, NUL, purpose).
pub fn derive(seed: &str, purpose: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.as_bytes());
    h.update([0u8]);
    h.update(purpose.as_bytes());
    h.finalize().into()
}

/// A version-4-shaped UUID derived from a seed, so images are reproducible.
pub fn derive_uuid(seed: &str, purpose: &str) -> Uuid {
    let d = derive(seed, purpose);
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid()
}

pub fn derive_u32(seed: &str, purpose: &str) -> u32 {
    let d = derive(seed, purpose);
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}
