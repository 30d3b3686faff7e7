//! Host keys before first boot (shared/FACTS.md 10): each node's SSH host key and initrd SSH
//! host key, ed25519 in OpenSSH's private key format, made on the workstation into the tree
//! nixos-anywhere's `--extra-files` copies onto the node's root.
//!
//! nixos-anywhere copies the tree with `tar -p`: its directories' modes become the node's
//! (`/`, `/etc`, `/etc/ssh`), so they are 0755 as on NixOS; the private keys are 0600, the
//! public ones 0644, and the directory above the nodes' trees (never copied) is 0700. A
//! private key is never printed, logged or put anywhere but its file.

use anyhow::{bail, Context, Result};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The two keys of a node, where the primer has them.
pub const HOST_KEY: &str = "etc/ssh/ssh_host_ed25519_key";
pub const INITRD_KEY: &str = "etc/ssh/initrd_ssh_host_ed25519_key";
/// The largest key file read back.
const MAX_KEY: u64 = 64 << 10;

/// What became of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    Created,
    /// There already, kept.
    Kept,
    /// Replaced (`--rotate`).
    Rotated,
}

/// A key as the user sees it: public parts only.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub path: String,
    /// The `.pub` line: "ssh-ed25519 AAAA... comment".
    pub public: String,
    pub fingerprint: String,
    pub fate: Fate,
    /// The fingerprint of the key it replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
}

/// Creates `dir` (and its parents) with `mode`, or checks it is a directory.
pub fn make_dir(dir: &Path, mode: u32) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(p) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        make_dir(p, mode)?;
    }
    std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", dir.display()))
}

/// Writes `bytes` to `path` with `mode` from the first byte on, then renames it into place.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().context("a key path has a directory")?;
    let tmp = dir.join(format!(
        ".{}.pi-burn-{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    // The umask may have taken bits the mode asked for (the .pub's 0644).
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The key at `path`, when there is one: its public key. A file that is no OpenSSH ed25519
/// private key is an error naming it (never its content).
fn read_key(path: &Path) -> Result<Option<PublicKey>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = crate::util::read_text_limited(path, MAX_KEY, "a host key")?;
    let key = PrivateKey::from_openssh(text.trim_end().as_bytes()).map_err(|_| {
        anyhow::anyhow!(
            "{} is not an OpenSSH private key pi-burn can read: move it away, or --rotate replaces it",
            path.display()
        )
    })?;
    if key.algorithm() != Algorithm::Ed25519 {
        bail!(
            "{} is a {} key, not ed25519: --rotate replaces it",
            path.display(),
            key.algorithm()
        );
    }
    Ok(Some(key.public_key().clone()))
}

/// The key at `path` (comment `comment`): kept when there is one, unless `rotate`; made
/// otherwise. Its `.pub` is written from the private key whenever it is missing or differs.
pub fn ensure(path: &Path, comment: &str, rotate: bool) -> Result<KeyInfo> {
    let pub_path = PathBuf::from(format!("{}.pub", path.display()));
    let existed = path.exists();
    let existing = match read_key(path) {
        Ok(k) => k,
        Err(_) if rotate => None,
        Err(e) => return Err(e),
    };
    let (public, fate, replaced) = match existing {
        Some(p) if !rotate => (p, Fate::Kept, None),
        old => {
            let mut key = PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519)
                .context("making an ed25519 key")?;
            key.set_comment(comment);
            let pem = key
                .to_openssh(LineEnding::LF)
                .context("writing the key in OpenSSH form")?;
            write_atomic(path, pem.as_bytes(), 0o600)?;
            let replaced = old.map(|p| p.fingerprint(HashAlg::Sha256).to_string());
            let fate = if existed {
                Fate::Rotated
            } else {
                Fate::Created
            };
            (key.public_key().clone(), fate, replaced)
        }
    };
    let public_line = public
        .to_openssh()
        .context("writing a public key in OpenSSH form")?;
    let line = format!("{public_line}\n");
    // Read within the key files' bound: a .pub that is larger, or unreadable, is rewritten.
    let current = crate::util::read_text_limited(&pub_path, MAX_KEY, "a public key");
    if current.ok().as_deref() != Some(line.as_str()) {
        write_atomic(&pub_path, line.as_bytes(), 0o644)?;
    }
    Ok(KeyInfo {
        path: path.display().to_string(),
        public: public_line,
        fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
        fate,
        replaced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_kept_then_rotated_and_its_pub_restored() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("etc/ssh/ssh_host_ed25519_key");
        make_dir(p.parent().unwrap(), 0o755).unwrap();
        let a = ensure(&p, "root@n", false).unwrap();
        assert_eq!(a.fate, Fate::Created);
        assert!(a.public.starts_with("ssh-ed25519 ") && a.public.ends_with(" root@n"));
        let mode = |q: &Path| std::fs::metadata(q).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o600);
        let pubp = d.path().join("etc/ssh/ssh_host_ed25519_key.pub");
        assert_eq!(mode(&pubp), 0o644);
        let before = std::fs::read(&p).unwrap();
        let b = ensure(&p, "root@n", false).unwrap();
        assert_eq!((b.fate, &b.fingerprint), (Fate::Kept, &a.fingerprint));
        assert_eq!(std::fs::read(&p).unwrap(), before);
        // A lost .pub comes back from the private key.
        std::fs::remove_file(&pubp).unwrap();
        ensure(&p, "root@n", false).unwrap();
        assert_eq!(
            std::fs::read_to_string(&pubp).unwrap(),
            format!("{}\n", a.public)
        );
        let c = ensure(&p, "root@n", true).unwrap();
        assert_eq!(c.fate, Fate::Rotated);
        assert_eq!(c.replaced.as_deref(), Some(a.fingerprint.as_str()));
        assert_ne!(c.fingerprint, a.fingerprint);
    }

    #[test]
    fn empty_truncated_and_oversized_key_files_are_named_not_replaced() {
        let d = tempfile::tempdir().unwrap();
        let good = d.path().join("good");
        ensure(&good, "c", false).unwrap();
        let pem = std::fs::read(&good).unwrap();
        let huge = vec![b'A'; (MAX_KEY + 1) as usize];
        for (name, bytes) in [
            ("empty", Vec::new()),
            ("truncated", pem[..pem.len() / 2].to_vec()),
            ("huge", huge),
        ] {
            let p = d.path().join(name);
            std::fs::write(&p, &bytes).unwrap();
            let e = format!("{:#}", ensure(&p, "c", false).unwrap_err());
            assert!(e.contains(name) && !e.contains('\n'), "{name}: {e}");
            assert_eq!(std::fs::read(&p).unwrap(), bytes, "{name} was changed");
        }
        // A .pub that is garbage or past the bound is written again from the private key.
        let pubp = d.path().join("good.pub");
        std::fs::write(&pubp, vec![b'x'; (MAX_KEY + 1) as usize]).unwrap();
        let k = ensure(&good, "c", false).unwrap();
        assert_eq!(k.fate, Fate::Kept);
        assert_eq!(
            std::fs::read_to_string(&pubp).unwrap(),
            format!("{}\n", k.public)
        );
    }

    #[test]
    fn a_file_that_is_no_key_is_named_not_replaced() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        std::fs::write(&p, "secret stuff that is not a key").unwrap();
        let e = ensure(&p, "c", false).unwrap_err().to_string();
        assert!(
            e.contains("not an OpenSSH private key") && !e.contains("secret"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "secret stuff that is not a key"
        );
        assert_eq!(ensure(&p, "c", true).unwrap().fate, Fate::Rotated);
    }
}
