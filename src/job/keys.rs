//! `keys`: which nodes, and whether `--out` is a safe place for private keys: never where the
//! flake's files go into the world-readable Nix store (the flake's git work tree, unless git
//! ignores the path; the whole flake directory when it is not in git).

use crate::cli::KeysArgs;
use crate::error::Refused;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

pub struct KeysJob {
    pub flake: PathBuf,
    pub out: PathBuf,
    /// The cluster's nodes, each with the install that copies its keys (and keeps its media).
    pub nodes: Vec<(String, crate::ssd::install::Handoff)>,
    /// Hosts of the flake that are no nodes of the cluster, each with why.
    pub left_out: Vec<String>,
    pub rotate: bool,
    pub initrd_port: u16,
}

/// The git work tree holding `dir`, if any (the nearest ancestor with a `.git`).
fn work_tree(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .take(256)
        .find(|a| a.join(".git").exists())
        .map(Path::to_path_buf)
}

/// Whether git ignores `path` in the work tree `root` (`git check-ignore`).
fn ignored(root: &Path, path: &Path) -> Result<bool, String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["check-ignore", "-q", "--"])
        .arg(path)
        .output()
        .map_err(|e| format!("git cannot be run ({e})"))?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(format!(
            "git check-ignore failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Refuses an `out` whose files a build of `flake` would copy into the Nix store.
pub fn check_out(flake: &Path, out: &Path) -> Result<()> {
    let (flake_abs, out_abs) = (crate::util::absolute(flake)?, crate::util::absolute(out)?);
    if out_abs.starts_with("/nix/store") {
        bail!(Refused(format!(
            "--out {}: inside the Nix store, readable by every user",
            out.display()
        )));
    }
    match work_tree(&flake_abs) {
        Some(root) if out_abs.starts_with(&root) => match ignored(&root, &out_abs) {
            Ok(true) => Ok(()),
            Ok(false) => bail!(Refused(format!(
                "--out {}: inside the flake's git work tree {} and not ignored by git; a flake copies its tracked files into the world-readable Nix store, so private keys do not belong there: add the directory to .gitignore, or choose one outside",
                out.display(),
                root.display()
            ))),
            Err(why) => bail!(Refused(format!(
                "--out {}: inside the flake's git work tree {}, and whether git ignores it cannot be told ({why}): choose a directory outside",
                out.display(),
                root.display()
            ))),
        },
        None if out_abs.starts_with(&flake_abs) => bail!(Refused(format!(
            "--out {}: inside the flake {}, which is not in git: Nix copies all of it into the world-readable Nix store; choose a directory outside",
            out.display(),
            flake.display()
        ))),
        _ => Ok(()),
    }
}

impl KeysJob {
    pub fn from_args(a: &KeysArgs) -> Result<Self> {
        let m = super::nodes::members(&a.flake, &a.node, a.eval, "rpi4")?;
        check_out(&a.flake, &a.out)?;
        let nodes = m
            .nodes
            .iter()
            .map(|cfg| {
                let extra = a.out.join(&cfg.node).display().to_string();
                (
                    cfg.node.clone(),
                    crate::doctor::handoff(cfg, &a.flake, Some(&extra)),
                )
            })
            .collect();
        Ok(KeysJob {
            flake: a.flake.clone(),
            out: a.out.clone(),
            nodes,
            left_out: m.left_out,
            rotate: a.rotate,
            initrd_port: a.initrd_port,
        })
    }
}
