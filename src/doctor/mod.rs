//! The doctor: each node's evaluated NixOS config checked against the media pi-burn makes for
//! it (the card, the SSD, the settings pi-burn.toml gives), and the install that keeps them.
//! Also which hosts of a flake are the cluster's nodes.

pub mod checks;

pub use checks::{Finding, Level, Media};

use crate::cluster::Custom;
use crate::ssd::install::Handoff;
use crate::ssd::{choose_disk, ConfigSource, DiskoDisk, NodeConfig};
use serde::Serialize;

/// What checking one node found.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub node: String,
    pub findings: Vec<Finding>,
    /// Checks that could not be made, and why.
    pub unchecked: Vec<String>,
    pub install: Handoff,
    /// The options as evaluated (the JSON `--options-json` reads), when they were.
    pub options: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Diagnosis {
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.level == Level::Error)
    }

    /// One line per finding, for a person: "pi-delta: error: OPTION = VALUE: CLASH. Fix: FIX".
    pub fn lines(&self) -> Vec<String> {
        self.findings
            .iter()
            .map(|f| {
                format!(
                    "{}: {}: {} = {}: {}. Fix: {}",
                    self.node,
                    match f.level {
                        Level::Error => "error",
                        Level::Warning => "warning",
                    },
                    f.option,
                    f.value,
                    f.clash,
                    f.fix
                )
            })
            .collect()
    }

    /// The errors, as the one line a burn refuses with.
    pub fn refusal(&self) -> Option<String> {
        let e: Vec<String> = self
            .errors()
            .map(|f| format!("{} = {} ({})", f.option, f.value, f.clash))
            .collect();
        (!e.is_empty()).then(|| {
            format!(
                "{}'s NixOS config does not fit its media: {} (`pi-burn doctor --node {}` says how to fix each; --allow-config-errors writes anyway)",
                self.node,
                e.join("; "),
                self.node
            )
        })
    }
}

/// The disks pi-burn prepares for a node: its firmware card (when its config has one) and its
/// SSD.
pub fn prepared(cfg: &NodeConfig) -> (Option<DiskoDisk>, Option<DiskoDisk>) {
    let origin = cfg.source.describe();
    (
        choose_disk(&cfg.devices, None, true, &origin).ok(),
        choose_disk(&cfg.devices, None, false, &origin).ok(),
    )
}

/// The install command for `cfg`'s node (with `extra_files` for its keys).
pub fn handoff(cfg: &NodeConfig, flake: &std::path::Path, extra_files: Option<&str>) -> Handoff {
    let (card, ssd) = prepared(cfg);
    let disks: Vec<&DiskoDisk> = card.iter().chain(ssd.iter()).collect();
    let flake = match cfg.source {
        ConfigSource::Json(_) | ConfigSource::BuiltinDefault => None,
        _ => Some(flake.display().to_string()),
    };
    Handoff::new(&cfg.node, flake.as_deref(), extra_files, &disks)
}

/// The card's config.txt (the release's, with the edits) and RPI_EFI.fd's size, when the
/// board's default release is in the cache.
fn cached_release(
    board: &str,
    manifest: &crate::firmware::manifest::Manifest,
    custom: &Custom,
) -> Result<(String, u64), String> {
    let b = manifest.board(board).map_err(|e| format!("{e:#}"))?;
    let rel = b.release(&b.default).map_err(|e| format!("{e:#}"))?;
    let pins = rel.pins().map_err(|e| format!("{e:#}"))?;
    let cache = crate::firmware::cache::Cache::from_env().map_err(|e| format!("{e:#}"))?;
    let Some(zip) = cache.lookup(board, &rel.version, pins.zip) else {
        return Err(format!(
            "{board} {} is not in the cache (`pi-burn firmware fetch` puts it there)",
            rel.version
        ));
    };
    let bytes =
        crate::util::read_limited(&zip, 256 << 20, "a cached zip").map_err(|e| format!("{e:#}"))?;
    let req = crate::firmware::Request {
        board: board.into(),
        version: Some(rel.version.clone()),
        sha256: pins.zip,
        max_unpacked: 256 << 20,
    };
    let fw = crate::firmware::verify_zip(
        manifest,
        &req,
        &bytes,
        "the cached zip",
        pins.zip,
        crate::firmware::Source::Cache,
    )
    .map_err(|e| format!("{e:#}"))?;
    let text = fw
        .files
        .file("config.txt")
        .and_then(|t| std::str::from_utf8(t).ok())
        .ok_or("the release has no config.txt")?;
    let edited = if custom.edits.is_empty() {
        text.to_string()
    } else {
        crate::firmware::configtxt::apply(text, &custom.edits, "config.txt")
            .map_err(|e| format!("{e:#}"))?
            .0
    };
    let fd = fw.files.file("RPI_EFI.fd").map_or(0, |f| f.len() as u64);
    Ok((edited, fd))
}

/// The top entries of the board's firmware tree: the manifest's required files, the card
/// record, and what every pftf release has besides (overlays/, firmware/).
fn firmware_top(board: &str, manifest: &crate::firmware::manifest::Manifest) -> Vec<String> {
    let mut top: Vec<String> = manifest
        .board(board)
        .map(|b| {
            b.required_files
                .iter()
                .map(|f| f.split('/').next().unwrap_or(f).to_string())
                .collect()
        })
        .unwrap_or_default();
    top.extend(
        ["overlays", "firmware", crate::disk::record::PATH]
            .iter()
            .map(|s| s.to_string()),
    );
    top
}

/// The setting `name`'s number in `custom`, if it sets one.
fn setting(custom: &Custom, name: &str) -> Option<u32> {
    custom.settings.iter().rev().find_map(|s| match s.value {
        crate::firmware::uefivars::settings::Value::Num(n) if s.def.name == name => Some(n),
        _ => None,
    })
}

/// Checks `cfg` (its options, when the flake was evaluated) against the media: `custom` are
/// the settings its card gets (pi-burn.toml), `board` its board, `card_label` the card's FAT
/// label.
pub fn diagnose(
    cfg: &NodeConfig,
    flake: &std::path::Path,
    custom: &Custom,
    board: &str,
    card_label: &str,
    manifest: &crate::firmware::manifest::Manifest,
) -> Diagnosis {
    let (card, ssd) = prepared(cfg);
    let mut unchecked = vec![];
    let esp = ssd.as_ref().and_then(|d| {
        d.partitions.iter().find(|p| {
            p.content.format.as_deref() == Some("vfat")
                && p.content
                    .mountpoint
                    .as_deref()
                    .is_some_and(|m| m.starts_with("/boot") && m != "/boot/firmware")
        })
    });
    let release = cached_release(board, manifest, custom);
    if let Err(why) = &release {
        unchecked.push(format!(
            "config.txt's device_tree_address against RPI_EFI.fd's size ({why})"
        ));
    }
    let (config_txt, efi_fd_bytes) = match release {
        Ok((t, n)) => (Some(t), Some(n)),
        // Without the release, what pi-burn.toml adds to config.txt is still known.
        Err(_) => (
            Some(
                custom
                    .edits
                    .iter()
                    .map(|e| format!("{}={}\n", e.key, e.value))
                    .collect(),
            ),
            None,
        ),
    };
    let media = Media {
        board: board.to_string(),
        card_label: card_label.to_string(),
        card_mount: card
            .as_ref()
            .and_then(|d| d.partitions.first())
            .and_then(|p| p.content.mountpoint.clone()),
        esp_label: esp.map(|p| p.label.clone()),
        esp_mount: esp.and_then(|p| p.content.mountpoint.clone()),
        firmware_on_ssd: custom.ssd_firmware.as_ref().is_some_and(|(b, _)| *b),
        firmware_top: firmware_top(board, manifest),
        ssd_on_usb: ssd.as_ref().is_some_and(|d| {
            !d.device
                .as_deref()
                .is_some_and(|p| p.contains("nvme") || p.contains("mmc"))
        }),
        system_table_mode: setting(custom, "SystemTableMode"),
        ram_limit_3gb: setting(custom, "RamLimitTo3GB"),
        config_txt,
        efi_fd_bytes,
    };
    let findings = match &cfg.options {
        Some(o) => checks::check(o, &media),
        None => {
            unchecked.insert(
                0,
                format!(
                    "{}'s NixOS config against its media ({})",
                    cfg.node,
                    cfg.unchecked
                        .as_deref()
                        .unwrap_or("the flake was not evaluated")
                ),
            );
            vec![]
        }
    };
    Diagnosis {
        node: cfg.node.clone(),
        findings,
        unchecked,
        install: handoff(cfg, flake, None),
        options: cfg.options.as_ref().map(|o| o.0.clone()),
    }
}

/// Before a node's media are written: its diagnosis's errors refuse it (exit 3) unless `allow`
/// (--allow-config-errors, then named in a warning); what could not be checked, and the
/// warnings, are said in `notices`.
pub fn gate(d: &Diagnosis, allow: bool, notices: &mut Vec<String>) -> anyhow::Result<()> {
    for f in d.findings.iter().filter(|f| f.level == Level::Warning) {
        notices.push(format!(
            "warning: {}: {} = {}: {} (`pi-burn doctor --node {}`)",
            d.node, f.option, f.value, f.clash, d.node
        ));
    }
    if let Some(u) = d
        .unchecked
        .first()
        .filter(|u| u.starts_with(&format!("{}'s NixOS", d.node)))
    {
        notices.push(format!("notice: not checked: {u}"));
    }
    match d.refusal() {
        None => Ok(()),
        Some(r) if allow => {
            notices.push(format!(
                "warning: --allow-config-errors: writing anyway; {r}"
            ));
            Ok(())
        }
        Some(r) => Err(crate::error::Found(r).into()),
    }
}

/// Whether `cfg` is one of the cluster's nodes: named in pi-burn.toml, or its disko config has
/// the firmware card (a disk mounting /boot/firmware). Else why not.
pub fn is_cluster_node(cfg: &NodeConfig, in_toml: bool) -> Result<(), String> {
    if in_toml || prepared(cfg).0.is_some() {
        return Ok(());
    }
    Err(format!(
        "{}: no firmware card in its disko config (no disk mounts /boot/firmware) and no [nodes.{}] in {}: not a node of the cluster",
        cfg.node,
        cfg.node,
        crate::cluster::FILE
    ))
}
