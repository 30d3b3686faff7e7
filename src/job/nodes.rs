//! Which hosts of a flake are the cluster's nodes (issue 27): those `--node` names, or else
//! every host named in pi-burn.toml or whose disko config has the firmware card. The others
//! (a laptop in the same flake) are left out, by name, never made a card or given keys.

use crate::error::usage;
use crate::ssd::config::EvalJson;
use crate::ssd::{EvalMode, NodeConfig};
use anyhow::{bail, Result};
use std::path::Path;

pub struct Members {
    /// The nodes, in name order, each with its config.
    pub nodes: Vec<NodeConfig>,
    /// The hosts left out, each with why.
    pub left_out: Vec<String>,
}

/// How the hosts' configs are read: evaluated here, or as Nix evaluated them beforehand.
pub enum Configs<'a> {
    Eval(EvalMode),
    Given(&'a EvalJson),
}

/// The cluster's nodes of `flake` (`named`: only these, each a host of the flake).
pub fn members(flake: &Path, named: &[String], eval: EvalMode, board: &str) -> Result<Members> {
    members_from(flake, named, Configs::Eval(eval), board)
}

/// [`members`], with the configs read as `configs` says.
pub fn members_from(
    flake: &Path,
    named: &[String],
    configs: Configs,
    board: &str,
) -> Result<Members> {
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
    if let Configs::Given(given) = &configs {
        // Every node of the file is a host of this flake (else it was evaluated from another).
        for n in given.names() {
            if !hosts.contains(&n) {
                bail!(usage(format!(
                    "--eval-json: node {n} is not a host of --flake {} (its hosts: {}): was the file made from another flake?",
                    flake.display(),
                    hosts.join(", ")
                )));
            }
        }
    }
    let in_toml = crate::cluster::Cluster::load(flake, &hosts, board)?.named();
    let mut nodes = vec![];
    let mut left_out = vec![];
    for h in &hosts {
        if !named.is_empty() && !named.contains(h) {
            continue;
        }
        let listed = in_toml.contains(h);
        let loaded = match &configs {
            Configs::Eval(eval) => crate::ssd::load(flake, h, *eval, None, false),
            Configs::Given(given) => match given.node(h) {
                Some(c) => c,
                None if named.is_empty() && !listed => {
                    left_out.push(format!(
                        "{h}: --eval-json has no evaluation of it (it has no nixosConfigurations.{h}?)"
                    ));
                    continue;
                }
                None => bail!(usage(format!(
                    "node {h}: --eval-json has no evaluation of it; evaluate nixosConfigurations.{h} too"
                ))),
            },
        };
        let cfg = match loaded {
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
