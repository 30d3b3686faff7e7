//! The firmware cache: verified zips keyed by their SHA-256, and references from a board's
//! release to the zip that verified as it.
//!
//! ```text
//! $PI_BURN_CACHE_DIR | $XDG_CACHE_HOME/pi-burn | ~/.cache/pi-burn
//!   blobs/<sha256>.zip        a zip that passed verification (written by rename, never in place)
//!   blobs/<sha256>.bin        a bootloader file (pieeprom, recovery.bin, vl805) that matched its pin
//!   refs/<board>/<version>    the sha256 of the zip that verified as that release
//!   partial/<sha256 of url>   an interrupted download, resumed by the next attempt
//!   lock                      held by a run while it downloads (concurrent runs take turns)
//! ```
//! A cached zip is verified again before every use.

use crate::firmware::digest::Sha256Digest;
use anyhow::{Context, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Cache {
    pub root: PathBuf,
}

impl Cache {
    /// The cache directory from the environment.
    pub fn from_env() -> Result<Self> {
        let root = if let Some(d) = std::env::var_os("PI_BURN_CACHE_DIR").filter(|d| !d.is_empty())
        {
            PathBuf::from(d)
        } else if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            PathBuf::from(d).join("pi-burn")
        } else if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
            PathBuf::from(h).join(".cache").join("pi-burn")
        } else {
            anyhow::bail!("no cache directory: set PI_BURN_CACHE_DIR, XDG_CACHE_HOME or HOME");
        };
        Ok(Cache { root })
    }

    pub fn blob_path(&self, sha: &Sha256Digest) -> PathBuf {
        self.root.join("blobs").join(format!("{sha}.zip"))
    }

    /// A verified bootloader file: stored by its SHA-256 (its pin), no reference needed.
    pub fn file_path(&self, sha: &Sha256Digest) -> PathBuf {
        self.root.join("blobs").join(format!("{sha}.bin"))
    }

    /// Stores a file that matched its pin.
    pub fn store_file(&self, sha: &Sha256Digest, bytes: &[u8]) -> Result<PathBuf> {
        let p = self.file_path(sha);
        write_atomic(&p, bytes)?;
        Ok(p)
    }

    fn ref_path(&self, board: &str, version: &str) -> PathBuf {
        self.root.join("refs").join(safe(board)).join(safe(version))
    }

    pub fn partial_path(&self, url: &str) -> PathBuf {
        self.root
            .join("partial")
            .join(Sha256Digest::of(url.as_bytes()).hex())
    }

    /// The cached zip for a release: by its zip pin, else through its reference.
    pub fn lookup(
        &self,
        board: &str,
        version: &str,
        zip_pin: Option<Sha256Digest>,
    ) -> Option<PathBuf> {
        if let Some(sha) = zip_pin {
            let p = self.blob_path(&sha);
            return p.is_file().then_some(p);
        }
        let text = crate::util::read_text_limited(
            &self.ref_path(board, version),
            1024,
            "a cache reference",
        )
        .ok()?;
        let sha = Sha256Digest::from_hex(text.trim()).ok()?;
        let p = self.blob_path(&sha);
        p.is_file().then_some(p)
    }

    /// Stores verified zip bytes under their hash and records the release's reference.
    pub fn store(
        &self,
        board: &str,
        version: &str,
        sha: &Sha256Digest,
        bytes: &[u8],
    ) -> Result<PathBuf> {
        // Always written (atomically): a blob already there may be a corrupt one.
        let blob = self.blob_path(sha);
        write_atomic(&blob, bytes)?;
        write_atomic(
            &self.ref_path(board, version),
            format!("{sha}\n").as_bytes(),
        )?;
        Ok(blob)
    }

    /// Every reference in the cache: (board or "url", version, the zip's sha256, its blob when
    /// it is there), sorted. At most 10,000 are listed.
    pub fn refs(&self) -> Vec<(String, String, Sha256Digest, Option<PathBuf>)> {
        let mut out = vec![];
        let Ok(boards) = fs::read_dir(self.root.join("refs")) else {
            return out;
        };
        for b in boards.flatten().take(1000) {
            let Ok(versions) = fs::read_dir(b.path()) else {
                continue;
            };
            for v in versions.flatten().take(10_000) {
                let text = crate::util::read_limited(&v.path(), 1024, "a cache reference")
                    .ok()
                    .and_then(|t| String::from_utf8(t).ok());
                let Some(sha) = text.and_then(|t| Sha256Digest::from_hex(t.trim()).ok()) else {
                    continue;
                };
                let blob = self.blob_path(&sha);
                out.push((
                    b.file_name().to_string_lossy().into_owned(),
                    v.file_name().to_string_lossy().into_owned(),
                    sha,
                    blob.is_file().then_some(blob),
                ));
                if out.len() >= 10_000 {
                    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
                    return out;
                }
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// The lock every download into this cache holds (one file, never removed).
    pub fn lock(&self) -> Result<crate::firmware::fetch::Lock> {
        fs::create_dir_all(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        crate::firmware::fetch::Lock::take(&self.root.join("lock"))
    }
}

/// Keeps a path component to safe characters.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `bytes` to `path` through a unique temporary file in the same directory and a rename,
/// so concurrent runs never see a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("cache path without a directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}
