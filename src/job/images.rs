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
    /// None when the node's firmware is on its SSD (pi-burn.toml `ssd_firmware = true`).
    pub card: Option<CardJob>,
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
    /// Hosts left out, and what the doctor said of the nodes.
    pub notices: Vec<String>,
}

/// Whether `p` is an entry of pi-burn's own `images` output, which `--force` may replace: a
/// regular file (no link, no directory) named as images names its files (NODE-sdcard.img,
/// NODE-ssd.img, eeprom.img, NODE-eeprom.img, each maybe .zst, their .bmap, SHA256SUMS) whose
/// first bytes are what such a file starts with. Else why not, naming it.
pub fn own_output(p: &Path) -> std::result::Result<(), String> {
    use std::io::Read;
    let shown = p.display();
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let m = std::fs::symlink_metadata(p).map_err(|e| format!("{shown} ({e})"))?;
    if !m.file_type().is_file() {
        return Err(format!(
            "{shown}, which is not a file pi-burn makes (a directory, link or other)"
        ));
    }
    let base = name
        .strip_suffix(".bmap")
        .or_else(|| name.strip_suffix(".zst"))
        .unwrap_or(&name);
    let image_name = base.ends_with("-sdcard.img")
        || base.ends_with("-ssd.img")
        || base.ends_with("-eeprom.img")
        || base == "eeprom.img";
    if !image_name && name != "SHA256SUMS" {
        return Err(format!(
            "{shown}, which is not an image, block map or checksum list pi-burn makes"
        ));
    }
    let mut head = [0u8; 512];
    let n = std::fs::File::open(p)
        .and_then(|f| f.take(512).read(&mut head))
        .map_err(|e| format!("{shown} ({e})"))?;
    let head = &head[..n];
    let looks = if name.ends_with(".bmap") {
        head.starts_with(b"<?xml") && crate::util::find(head, b"<bmap").is_some()
    } else if name.ends_with(".zst") {
        head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
    } else if name == "SHA256SUMS" {
        head.is_empty()
            || head
                .split(|b| *b == b'\n')
                .next()
                .is_some_and(|l| l.len() > 66 && l[..64].iter().all(u8::is_ascii_hexdigit))
    } else {
        // An image: an MBR boot signature (protective or real) at 510.
        n == 512 && head[510..512] == [0x55, 0xAA]
    };
    if looks {
        Ok(())
    } else {
        Err(format!(
            "{shown}, whose content is not what pi-burn writes there"
        ))
    }
}

/// `--out`: never the flake or a directory holding it; when it is not empty, replaced only
/// with `--force` and only when everything in it is pi-burn's own earlier output.
fn check_out(flake: &Path, out: &Path, force: bool) -> Result<()> {
    let flake_abs =
        std::fs::canonicalize(flake).with_context(|| format!("--flake {}", flake.display()))?;
    let out_abs = crate::util::absolute(out)?;
    if flake_abs.starts_with(&out_abs) {
        bail!(crate::error::Refused(format!(
            "--out {}: it holds the flake {} (replacing it would delete the flake): choose a directory of its own, e.g. {}",
            out.display(),
            flake.display(),
            flake_abs.join("images").display()
        )));
    }
    let entries = match std::fs::read_dir(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) if !out.is_dir() => {
            bail!(usage(format!("--out {}: not a directory", out.display())))
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", out.display())),
        Ok(entries) => entries,
    };
    let mut any = false;
    for e in entries {
        any = true;
        let p = e
            .with_context(|| format!("reading {}", out.display()))?
            .path();
        if !force {
            break;
        }
        if let Err(why) = own_output(&p) {
            bail!(crate::error::Refused(format!(
                "--out {} holds {why}: --force replaces only pi-burn's own images, block maps and checksums; choose a new or empty directory",
                out.display()
            )));
        }
    }
    if any && !force {
        bail!(usage(format!(
            "--out {}: the directory is not empty; images writes a whole set into a new or empty directory, or replaces its own earlier set with --force",
            out.display()
        )));
    }
    Ok(())
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
        let firmware = FirmwareJob::from_args(&a.firmware)?;
        // The cluster's nodes, each config read once; the other hosts left out, named.
        let given = a
            .eval_json
            .as_deref()
            .map(crate::ssd::config::EvalJson::read)
            .transpose()?;
        let configs = match &given {
            Some(g) => super::nodes::Configs::Given(g),
            None => super::nodes::Configs::Eval(a.eval),
        };
        let members = super::nodes::members_from(&a.flake, &a.node, configs, firmware.board())?;
        check_out(&a.flake, &a.out, a.force)?;
        let staging = staging_dir(&a.out)?;
        let hosts = crate::ssd::config::nodes(&a.flake);
        // Every node's inputs first: a bad config or pi-burn.toml stops the run before any
        // download or write.
        // pi-burn.toml once: an error in it names the file, not a node.
        let cluster = crate::cluster::Cluster::load(&a.flake, &hosts, firmware.board())?;
        let mut notices: Vec<String> = members
            .left_out
            .iter()
            .map(|l| format!("left out: {l}"))
            .collect();
        let mut refusals = vec![];
        let mut jobs = vec![];
        for cfg in &members.nodes {
            let node = &cfg.node;
            // Each node's NixOS config against its media: all of them before any refusal.
            let d = crate::doctor::diagnose(
                cfg,
                &a.flake,
                &cluster.for_node(node),
                firmware.board(),
                "FIRMWARE",
                &firmware.manifest,
            );
            if let Err(e) = crate::doctor::gate(&d, a.allow_config_errors, &mut notices) {
                refusals.push(format!("{e:#}"));
            }
            let n = node_jobs(a, &cluster, cfg, &staging, &firmware, &mut notices)
                .with_context(|| format!("node {node}"))?;
            jobs.push(n);
        }
        if !refusals.is_empty() {
            bail!(crate::error::Found(format!(
                "{}; nothing was written",
                refusals.join("; ")
            )));
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
            notices,
        })
    }
}

fn node_jobs(
    a: &ImagesArgs,
    cluster: &crate::cluster::Cluster,
    cfg: &crate::ssd::NodeConfig,
    staging: &Path,
    fw: &FirmwareJob,
    notices: &mut Vec<String>,
) -> Result<NodeJobs> {
    let node = cfg.node.as_str();
    let toml = cluster.for_node(node);
    let on_ssd = toml.ssd_firmware.as_ref().is_some_and(|(b, _)| *b);
    if on_ssd {
        super::ssd::check_boot_order(node, &toml.bootconf, notices)?;
    }
    let custom = super::custom::with_base(&a.custom, fw.board(), toml)?;
    let card = match on_ssd {
        true => None,
        false => Some(for_node(
            cfg,
            &a.flake,
            custom.clone(),
            fw.clone(),
            staging.join(format!("{node}-sdcard.img")),
            false,
        )?),
    };
    let ssd = SsdJob::for_node(
        cfg,
        &a.flake,
        a.ssd_size.map(|s| s.0),
        staging.join(format!("{node}-ssd.img")),
        false,
        on_ssd.then(|| super::ssd::SsdFirmware {
            job: fw.clone(),
            custom,
        }),
    )?;
    Ok(NodeJobs {
        node: node.to_string(),
        card,
        ssd,
    })
}
