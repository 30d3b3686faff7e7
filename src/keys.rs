//! Host keys before first boot (shared/FACTS.md 10): each node's SSH host key and initrd SSH
//! host key, ed25519 in OpenSSH's private key format, made on the workstation into the tree
//! nixos-anywhere's `--extra-files` copies onto the node's root.
//!
//! nixos-anywhere copies the tree with `tar -p`: its directories' modes become the node's
//! (`/`, `/etc`, `/etc/ssh`), so they are 0755 as on NixOS; the private keys are 0600, the
//! public ones 0644, and the directory above the nodes' trees (never copied) is 0700. A
//! private key is never printed, logged or put anywhere but its file.

use crate::error::Refused;
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
    /// A kept key's mode that sshd would refuse, set right ("mode 0644 -> 0600").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
}

/// Refuses a path that is a symbolic link (planted by another user in a shared directory,
/// it would take the keys elsewhere; copied by --extra-files, it dangles on the node).
fn no_link(path: &Path, m: &std::fs::Metadata) -> Result<()> {
    if m.file_type().is_symlink() {
        bail!(Refused(format!(
            "{} is a symbolic link: pi-burn writes keys only into real directories and files it made or checked; remove the link",
            path.display()
        )));
    }
    Ok(())
}

/// `dir` as a real directory of `mode`: made when missing (one level: its parent is checked
/// first), refused when it is a link or not a directory, its mode set right when it is
/// another (said in the returned note). Never follows a link.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<Option<String>> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) => {
            no_link(dir, &m)?;
            if !m.is_dir() {
                bail!(Refused(format!(
                    "{} is not a directory; pi-burn keeps keys under directories it made or checked",
                    dir.display()
                )));
            }
            let now = m.permissions().mode() & 0o7777;
            if now == mode {
                return Ok(None);
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("setting the mode of {}", dir.display()))?;
            Ok(Some(format!(
                "{}: mode {now:04o} -> {mode:04o}",
                dir.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::create_dir(dir) {
            Ok(()) => {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
                    .with_context(|| format!("setting the mode of {}", dir.display()))?;
                Ok(None)
            }
            // Made meanwhile (another run): checked as any existing one.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => ensure_dir(dir, mode),
            Err(e) => Err(e).with_context(|| format!("creating {}", dir.display())),
        },
        Err(e) => Err(e).with_context(|| format!("checking {}", dir.display())),
    }
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

/// A regular file at `path`, read whole within `max` bytes without following a link or
/// blocking on a FIFO; `None` when there is nothing there. A link, a FIFO, a device or a
/// directory is refused by name and never opened.
fn read_regular(path: &Path, max: u64, what: &str) -> Result<Option<(Vec<u8>, u32)>> {
    use std::io::Read;
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
    };
    no_link(path, &m)?;
    if !m.is_file() {
        bail!(Refused(format!(
            "{} is not a regular file (a FIFO, a device or a directory): pi-burn neither opens nor replaces it; remove it",
            path.display()
        )));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let mut out = vec![];
    f.take(max + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("reading {}", path.display()))?;
    if out.len() as u64 > max {
        bail!(
            "{} is larger than {max} bytes: too large for {what}",
            path.display()
        );
    }
    Ok(Some((out, m.permissions().mode() & 0o7777)))
}

/// The key at `path`, when there is one: its public key and its file's mode. A file that is
/// no unencrypted OpenSSH ed25519 private key is an error naming it (never its content).
fn read_key(path: &Path) -> Result<Option<(PublicKey, u32)>> {
    let Some((bytes, mode)) = read_regular(path, MAX_KEY, "a host key")? else {
        return Ok(None);
    };
    let not_a_key = || {
        anyhow::anyhow!(
            "{} is not an OpenSSH private key pi-burn can read: move it away, or --rotate replaces it",
            path.display()
        )
    };
    let text = String::from_utf8(bytes).map_err(|_| not_a_key())?;
    let key = PrivateKey::from_openssh(text.trim_end().as_bytes()).map_err(|_| not_a_key())?;
    if key.is_encrypted() {
        bail!(
            "{} is encrypted with a passphrase: sshd cannot load a host key that asks for one at boot; --rotate replaces it",
            path.display()
        );
    }
    if key.algorithm() != Algorithm::Ed25519 {
        bail!(
            "{} is a {} key, not ed25519: --rotate replaces it",
            path.display(),
            key.algorithm()
        );
    }
    Ok(Some((key.public_key().clone(), mode)))
}

/// The key at `path` (comment `comment`): kept when there is one, unless `rotate`; made
/// otherwise. Its `.pub` is written from the private key whenever it is missing or differs.
pub fn ensure(path: &Path, comment: &str, rotate: bool) -> Result<KeyInfo> {
    let pub_path = PathBuf::from(format!("{}.pub", path.display()));
    let existed = path.exists();
    let existing = match read_key(path) {
        Ok(k) => k,
        // A link or a special file is never replaced, with --rotate neither.
        Err(e) if e.is::<Refused>() => return Err(e),
        Err(_) if rotate => None,
        Err(e) => return Err(e),
    };
    let mut fixed = None;
    let (public, fate, replaced) = match existing {
        Some((p, mode)) if !rotate => {
            // sshd refuses a host key that others can read: kept, its mode set right.
            if mode != 0o600 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("setting the mode of {}", path.display()))?;
                fixed = Some(format!("mode {mode:04o} -> 0600"));
            }
            (p, Fate::Kept, None)
        }
        old => {
            let mut key = PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519)
                .context("making an ed25519 key")?;
            key.set_comment(comment);
            let pem = key
                .to_openssh(LineEnding::LF)
                .context("writing the key in OpenSSH form")?;
            write_atomic(path, pem.as_bytes(), 0o600)?;
            let replaced = old.map(|(p, _)| p.fingerprint(HashAlg::Sha256).to_string());
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
    // Read within the key files' bound, never through a link or from a FIFO: a .pub that is
    // larger, unreadable, another kind of file or of another mode is written again (renamed
    // over: a link there is replaced, not followed).
    let current = read_regular(&pub_path, MAX_KEY, "a public key")
        .ok()
        .flatten();
    if current.as_ref().map(|(b, m)| (b.as_slice(), *m)) != Some((line.as_bytes(), 0o644)) {
        write_atomic(&pub_path, line.as_bytes(), 0o644)?;
    }
    Ok(KeyInfo {
        path: path.display().to_string(),
        public: public_line,
        fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
        fate,
        replaced,
        fixed,
    })
}

/// One node's keys, made or kept, and what was set right on the way.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeKeys {
    pub node: String,
    pub extra_files: String,
    pub host_key: KeyInfo,
    pub initrd_key: KeyInfo,
    /// Directories of the tree whose modes were set right (0755, as the node's own).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixed_dirs: Vec<String>,
}

/// `out`, the directory above the nodes' trees: a real directory (a link is refused; made
/// 0700 when missing), and a note when others may list it. Then locked for this run: two
/// runs at once take turns, so neither prints keys the other replaced.
pub fn open_out(out: &Path) -> Result<(crate::firmware::fetch::Lock, Option<String>)> {
    let note = match std::fs::symlink_metadata(out) {
        Ok(m) => {
            no_link(out, &m)?;
            if !m.is_dir() {
                bail!(crate::error::usage(format!(
                    "--out {}: not a directory",
                    out.display()
                )));
            }
            let mode = m.permissions().mode() & 0o777;
            (mode & 0o077 != 0).then(|| format!(
                "warning: {} is open to other users (mode {mode:o}); each private key is 0600, but `chmod 700 {}` keeps them from listing the tree",
                out.display(),
                out.display()
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(p) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
            }
            ensure_dir(out, 0o700)?;
            None
        }
        Err(e) => return Err(e).with_context(|| format!("checking {}", out.display())),
    };
    let lock = crate::firmware::fetch::Lock::take(&out.join(".pi-burn-keys.lock"))?;
    Ok((lock, note))
}

/// `node`'s two keys under `out` (locked by [`open_out`]), made or kept (`rotate`: replaced).
pub fn node_keys(out: &Path, node: &str, rotate: bool) -> Result<NodeKeys> {
    let root = out.join(node);
    let mut fixed_dirs = vec![];
    // As the node's own /, /etc and /etc/ssh: nixos-anywhere copies these modes.
    for d in [root.clone(), root.join("etc"), root.join("etc/ssh")] {
        fixed_dirs.extend(ensure_dir(&d, 0o755)?);
    }
    let host_key = ensure(&root.join(HOST_KEY), &format!("root@{node}"), rotate)
        .with_context(|| format!("{node}'s host key"))?;
    let initrd_key = ensure(&root.join(INITRD_KEY), &format!("initrd@{node}"), rotate)
        .with_context(|| format!("{node}'s initrd host key"))?;
    Ok(NodeKeys {
        node: node.to_string(),
        extra_files: root.display().to_string(),
        host_key,
        initrd_key,
        fixed_dirs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_kept_then_rotated_and_its_pub_restored() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("etc/ssh/ssh_host_ed25519_key");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
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
