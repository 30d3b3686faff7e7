//! `images` as a job: every node of the flake, its card and SSD jobs built from its config
//! (no flags fabricated), all checked before the firmware is fetched or anything is written.
//! The images are made in a staging directory beside `--out` and moved into place together.

use super::card::{for_node, CardJob};
use super::firmware::FirmwareJob;
use super::ssd::SsdJob;
use crate::cli::ImagesArgs;
use crate::error::usage;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

pub struct NodeJobs {
    pub node: String,
    pub card: CardJob,
    pub ssd: SsdJob,
}

pub struct ImagesJob {
    pub flake: PathBuf,
    pub out: PathBuf,
    /// Where the images are made before they replace `out` as one.
    pub staging: PathBuf,
    pub force: bool,
    pub firmware: FirmwareJob,
    pub nodes: Vec<NodeJobs>,
    /// EEPROM cards pi-burn.toml asks for: the cluster's (`[defaults.eeprom]`), and one per
    /// node with an `eeprom` table of its own: (node or "cluster", job).
    pub eeprom: Vec<(String, super::eeprom::EepromJob)>,
}

/// `.OUT.pi-burn-PID.tmp` beside `out`.
fn staging_dir(out: &Path) -> Result<PathBuf> {
    let name = out
        .file_name()
        .with_context(|| format!("--out {}: no directory name", out.display()))?
        .to_string_lossy()
        .into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        bail!(usage(format!(
            "--out {}: {} is not a directory",
            out.display(),
            parent.display()
        )));
    }
    Ok(parent.join(format!(".{name}.pi-burn-{}.tmp", std::process::id())))
}

impl ImagesJob {
    pub fn from_args(a: &ImagesArgs) -> Result<Self> {
        if !a.flake.is_dir() {
            bail!(usage(format!(
                "--flake {}: no such directory",
                a.flake.display()
            )));
        }
        let nodes = crate::ssd::config::nodes(&a.flake);
        if nodes.is_empty() {
            bail!(usage(format!(
                "--flake {}: no hosts/NODE/disk-config.nix, so no nodes",
                a.flake.display()
            )));
        }
        match std::fs::read_dir(&a.out) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) if !a.out.is_dir() => {
                bail!(usage(format!("--out {}: not a directory", a.out.display())))
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", a.out.display())),
            Ok(mut entries) => {
                if entries.next().is_some() && !a.force {
                    bail!(usage(format!(
                        "--out {}: the directory is not empty; images writes a whole set into a new or empty directory, or replaces one with --force",
                        a.out.display()
                    )));
                }
            }
        }
        let staging = staging_dir(&a.out)?;
        let firmware = FirmwareJob::from_args(&a.firmware)?;
        // Every node's inputs first: a bad config or pi-burn.toml stops the run before any
        // download or write.
        // pi-burn.toml once: an error in it names the file, not a node.
        let cluster = crate::cluster::Cluster::load(&a.flake, &nodes, firmware.board())?;
        let mut jobs = vec![];
        for node in &nodes {
            let n = node_jobs(a, &cluster, node, &staging, &firmware)
                .with_context(|| format!("node {node}"))?;
            jobs.push(n);
        }
        let mut eeprom = vec![];
        let wanted = cluster
            .eeprom_card
            .then(|| ("cluster".to_string(), None, cluster.defaults().bootconf))
            .into_iter()
            .chain(
                cluster
                    .eeprom_nodes()
                    .into_iter()
                    .map(|n| (n.clone(), Some(n.clone()), cluster.for_node(&n).bootconf)),
            );
        for (name, node, edits) in wanted {
            let file = match &node {
                Some(n) => format!("{n}-eeprom.img"),
                None => "eeprom.img".into(),
            };
            let job = super::eeprom::EepromJob::for_cluster(
                &firmware.manifest,
                firmware.board(),
                edits,
                node,
                staging.join(file),
                false,
                firmware.offline,
            )
            .with_context(|| format!("{} [defaults.eeprom]", crate::cluster::FILE))?;
            eeprom.push((name, job));
        }
        Ok(ImagesJob {
            flake: a.flake.clone(),
            out: a.out.clone(),
            staging,
            force: a.force,
            firmware,
            nodes: jobs,
            eeprom,
        })
    }
}

fn node_jobs(
    a: &ImagesArgs,
    cluster: &crate::cluster::Cluster,
    node: &str,
    staging: &Path,
    fw: &FirmwareJob,
) -> Result<NodeJobs> {
    let custom = super::custom::with_base(&a.custom, fw.board(), cluster.for_node(node))?;
    let cfg = crate::ssd::load(&a.flake, node, a.eval, None, false)?;
    let card = for_node(
        &cfg,
        &a.flake,
        custom,
        fw.clone(),
        staging.join(format!("{node}-sdcard.img")),
        false,
    )?;
    let ssd = SsdJob::for_node(
        &cfg,
        &a.flake,
        a.ssd_size.map(|s| s.0),
        staging.join(format!("{node}-ssd.img")),
        false,
    )?;
    Ok(NodeJobs {
        node: node.to_string(),
        card,
        ssd,
    })
}
