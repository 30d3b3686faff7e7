//! `pi-burn keys`: the nodes' host keys before their first boot, and the lines to paste.

use super::{Global, Outcome};
use crate::cli::KeysArgs;
use crate::job::keys::KeysJob;
use crate::keys::{Fate, NodeKeys};
use anyhow::Result;

/// "ssh-ed25519 AAAA..." without the comment.
fn bare(public: &str) -> String {
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Each key's fate on stderr, with what was set right.
fn say_fates(n: &NodeKeys, g: &Global) {
    for d in &n.fixed_dirs {
        g.progress().notice(&format!(
            "notice: {d} (nixos-anywhere copies it as the node's own)"
        ));
    }
    for k in [&n.host_key, &n.initrd_key] {
        let what = match k.fate {
            Fate::Created => "made".to_string(),
            Fate::Kept => match &k.fixed {
                Some(f) => format!("kept, {f} (sshd refuses a host key others can read)"),
                None => "kept".to_string(),
            },
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
}

pub fn run(a: &KeysArgs, g: &Global) -> Result<Outcome> {
    let job = KeysJob::from_args(a)?;
    // The directory above the nodes' trees is never copied: only its owner reaches the keys.
    let (_lock, note) = crate::keys::open_out(&job.out)?;
    if let Some(n) = note {
        g.progress().notice(&n);
    }
    for l in &job.left_out {
        g.progress().notice(&format!("left out: {l}"));
    }
    let mut nodes = vec![];
    for (node, _) in &job.nodes {
        let n = crate::keys::node_keys(&job.out, node, job.rotate)?;
        say_fates(&n, g);
        nodes.push(n);
    }
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
    let install: Vec<String> = job.nodes.iter().flat_map(|(_, h)| h.lines()).collect();
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
        "install": job.nodes.iter().map(|(_, h)| h).collect::<Vec<_>>(),
        "left_out": job.left_out,
    }))?
    .lines(lines))
}
