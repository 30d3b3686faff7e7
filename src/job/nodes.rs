//! Which hosts of a flake are the cluster's nodes (issue 27): those `--node` names, or else
//! every host named in pi-burn.toml or whose disko config has the firmware card. The others
//! (a laptop in the same flake) are left out, by name, never made a card or given keys.

use crate::error::usage;
use crate::ssd::{EvalMode, NodeConfig};
use anyhow::{bail, Result};
use std::path::Path;

pub struct Members {
    /// The nodes, in name order, each with its config.
    pub nodes: Vec<NodeConfig>,
    /// The hosts left out, each with why.
    pub left_out: Vec<String>,
}

/// The cluster's nodes of `flake` (`named`: only these, each a host of the flake).
pub fn members(flake: &Path, named: &[String], eval: EvalMode, board: &str) -> Result<Members> {
    if !flake.is_dir() {
        bail!(usage(format!(
            "--flake {}: no such directory",
            flake.display()
        )));
    }
    let hosts = crate::ssd::config::nodes(flake);
    if hosts.is_empty() {
        bail!(usage(format!(
            "--flake {}: no hosts/NODE/disk-config.nix, so no nodes",
            flake.display()
        )));
    }
    for n in named {
        crate::ssd::config::check_node(flake, n, &hosts)?;
    }
    let in_toml = crate::cluster::Cluster::load(flake, &hosts, board)?.named();
    let mut nodes = vec![];
    let mut left_out = vec![];
    for h in &hosts {
        if !named.is_empty() && !named.contains(h) {
            continue;
        }
        let listed = in_toml.contains(h);
        let cfg = match crate::ssd::load(flake, h, eval, None, false) {
            Ok(c) => c,
            Err(e) if named.is_empty() && !listed => {
                left_out.push(format!(
                    "{h}: its config could not be read ({e:#}); name it with --node if it is a node"
                ));
                continue;
            }
            Err(e) => return Err(e.context(format!("node {h}"))),
        };
        match crate::doctor::is_cluster_node(&cfg, listed || named.contains(h)) {
            Ok(()) => nodes.push(cfg),
            Err(why) => left_out.push(why),
        }
    }
    if nodes.is_empty() {
        bail!(usage(format!(
            "--flake {}: no node of the cluster ({})",
            flake.display(),
            left_out.join("; ")
        )));
    }
    Ok(Members { nodes, left_out })
}
