//! `pi-burn keys`: the nodes' host keys before their first boot, and the lines to paste.

use super::{Global, Outcome};
use crate::cli::KeysArgs;
use crate::job::keys::KeysJob;
use crate::keys::{ensure, make_dir, Fate, KeyInfo, HOST_KEY, INITRD_KEY};
use anyhow::{Context, Result};
use std::os::unix::fs::PermissionsExt;

/// One node's keys.
#[derive(serde::Serialize)]
struct NodeKeys {
    node: String,
    extra_files: String,
    host_key: KeyInfo,
    initrd_key: KeyInfo,
}

/// "ssh-ed25519 AAAA..." without the comment.
fn bare(public: &str) -> String {
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `node`'s two keys, made or kept, each named with its fingerprint on stderr.
fn node_keys(job: &KeysJob, node: &str, g: &Global) -> Result<NodeKeys> {
    let root = job.out.join(node);
    // As the node's own /, /etc and /etc/ssh: nixos-anywhere copies these modes.
    for d in [root.clone(), root.join("etc"), root.join("etc/ssh")] {
        make_dir(&d, 0o755)?;
    }
    let host_key = ensure(&root.join(HOST_KEY), &format!("root@{node}"), job.rotate)
        .with_context(|| format!("{node}'s host key"))?;
    let initrd_key = ensure(
        &root.join(INITRD_KEY),
        &format!("initrd@{node}"),
        job.rotate,
    )
    .with_context(|| format!("{node}'s initrd host key"))?;
    for k in [&host_key, &initrd_key] {
        let what = match k.fate {
            Fate::Created => "made".to_string(),
            Fate::Kept => "kept".to_string(),
            Fate::Rotated => format!(
                "replaced (was {})",
                k.replaced
                    .as_deref()
                    .unwrap_or("not a key pi-burn could read")
            ),
        };
        g.progress()
            .phase(&format!("{}: {what}, {}", k.path, k.fingerprint));
    }
    Ok(NodeKeys {
        node: node.to_string(),
        extra_files: root.display().to_string(),
        host_key,
        initrd_key,
    })
}

pub fn run(a: &KeysArgs, g: &Global) -> Result<Outcome> {
    let job = KeysJob::from_args(a)?;
    // The directory above the nodes' trees is never copied: only its owner reaches the keys.
    if job.out.exists() {
        let mode = std::fs::metadata(&job.out)
            .with_context(|| format!("reading {}", job.out.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            g.progress().notice(&format!(
                "warning: {} is open to other users (mode {:o}); each private key is 0600, but `chmod 700 {}` keeps them from listing the tree",
                job.out.display(),
                mode & 0o777,
                job.out.display()
            ));
        }
    } else {
        make_dir(&job.out, 0o700)?;
    }
    let mut nodes = vec![];
    for node in &job.nodes {
        nodes.push(node_keys(&job, node, g)?);
    }
    let flake = job.flake.display();
    let known_hosts: Vec<String> = nodes
        .iter()
        .flat_map(|n| {
            [
                format!("{} {}", n.node, bare(&n.host_key.public)),
                format!(
                    "[{}]:{} {}",
                    n.node,
                    job.initrd_port,
                    bare(&n.initrd_key.public)
                ),
            ]
        })
        .collect();
    let install: Vec<String> = nodes
        .iter()
        .map(|n| {
            format!(
                "nixos-anywhere --flake {flake}#{} --extra-files {} --disko-mode format --target-host root@<{}'s address>",
                n.node, n.extra_files, n.node
            )
        })
        .collect();
    let mut lines = vec![];
    macro_rules! say {
        ($($t:tt)*) => { lines.push(format!($($t)*)) };
    }
    say!("# secrets.nix: the nodes' host keys, for agenix");
    say!("  systems = {{");
    for n in &nodes {
        say!("    {} = \"{}\";", n.node, bare(&n.host_key.public));
    }
    say!("  }};");
    say!(
        "# known_hosts: each node, and its initrd's SSH server (port {})",
        job.initrd_port
    );
    for l in &known_hosts {
        say!("{l}");
    }
    say!("# install each node with its keys in place (they are never in the Nix store):");
    for l in &install {
        say!("{l}");
    }
    say!(
        "# the node's config: services.openssh reads /etc/ssh/ssh_host_ed25519_key; boot.initrd.network.ssh.hostKeys = [ \"/etc/ssh/initrd_ssh_host_ed25519_key\" ]; port = {};",
        job.initrd_port
    );
    Ok(Outcome::of(&serde_json::json!({
        "out": job.out.display().to_string(),
        "nodes": nodes,
        "known_hosts": known_hosts,
        "install": install,
    }))?
    .lines(lines))
}
