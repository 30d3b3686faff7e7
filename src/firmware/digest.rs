//! SHA-256 digests: a newtype that prints as hex or as a Nix SRI string, parsed from either.

use anyhow::{bail, Context, Result};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Hashes a byte slice.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    pub(crate) fn from_hasher(h: Sha256) -> Self {
        let out = h.finalize();
        let mut d = [0u8; 32];
        d.copy_from_slice(&out);
        Sha256Digest(d)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.len() != 64 {
            bail!(
                "'{s}' is not a SHA-256 digest: expected 64 hex digits, got {}",
                s.len()
            );
        }
        let mut d = [0u8; 32];
        for (i, byte) in d.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .with_context(|| format!("'{s}' is not a SHA-256 digest: not hexadecimal"))?;
        }
        Ok(Sha256Digest(d))
    }

    /// Parses a Nix SRI hash `sha256-<base64>`.
    pub fn from_sri(s: &str) -> Result<Self> {
        let Some(b64) = s.trim().strip_prefix("sha256-") else {
            bail!("'{s}' is not an SRI SHA-256 hash: it must start with 'sha256-'");
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .with_context(|| format!("'{s}' is not an SRI SHA-256 hash: bad base64"))?;
        let d: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("'{s}' is not an SRI SHA-256 hash: not 32 bytes"))?;
        Ok(Sha256Digest(d))
    }

    /// Lower-case hex.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Nix SRI form, `sha256-<base64>`.
    pub fn sri(&self) -> String {
        format!(
            "sha256-{}",
            base64::engine::general_purpose::STANDARD.encode(self.0)
        )
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_has_the_well_known_digest() {
        assert_eq!(
            Sha256Digest::of(b"").hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn sri_and_hex_round_trip() {
        // v1.35: the zip hash in hex and the same value as a Nix fetchurl SRI (as JoshVanL/nixos apps/install.nix pins it).
        let hex = "3ea16d6bc4f8f122527ad6a84c0fe84ad80d85fd43a868d99c360ad9e93d3f6e";
        let d = Sha256Digest::from_hex(hex).unwrap();
        assert_eq!(
            d.sri(),
            "sha256-PqFta8T48SJSetaoTA/oStgNhf1DqGjZnDYK2ek9P24="
        );
        assert_eq!(Sha256Digest::from_sri(&d.sri()).unwrap(), d);
        assert_eq!(Sha256Digest::from_hex(&hex.to_uppercase()).unwrap(), d);
    }

    #[test]
    fn bad_digests_are_refused_with_the_reason() {
        assert!(Sha256Digest::from_hex("abc")
            .unwrap_err()
            .to_string()
            .contains("64 hex"));
        assert!(Sha256Digest::from_hex(&"g".repeat(64)).is_err());
        assert!(Sha256Digest::from_sri("md5-abc").is_err());
        assert!(Sha256Digest::from_sri("sha256-AAAA").is_err());
    }
}
