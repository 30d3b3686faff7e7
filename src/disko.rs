//! A node's disko configuration: loading it (built-in evaluator, `nix-instantiate`, or JSON),
//! reading its disks, and placing their GPT partitions exactly as disko's sgdisk commands do.
//!
//! disko runs, per partition in order, `sgdisk --align-end --new=N:START:END
//! --change-name=N:LABEL --typecode=N:TYPE DEVICE` with START `0` and END `+SIZE` (or `-0` for
//! "100%"). sgdisk then: starts at the first free sector rounded up to 1 MiB; for `+X` ends at
//! start + X - 1; for `-X` (and `0`) ends X sectors before the last usable sector rounded down so
//! that end + 1 is a multiple of 1 MiB. A bare number counts sectors; K, M, G, T, P are powers of
//! 1024 bytes.

use crate::layout::{derive_uuid, gpt_type, DiskPlan, PartType, PartitionPlan, TableKind, MIB};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// The cluster's nodes: a node without a config file gets the documented default layout.
pub const CLUSTER_NODES: &[&str] = &["pi-alpha", "pi-beta", "pi-gamma"];

/// The cluster's documented layout (the primer's disk-config.nix without device paths).
pub const DEFAULT_CONFIG: &str = r#"{
  disko.devices.disk = {
    sdcard = {
      type = "disk";
      content = {
        type = "gpt";
        partitions.firmware = {
          name = "FIRMWARE";
          size = "512M";
          type = "EF00";
          content = { type = "filesystem"; format = "vfat"; mountpoint = "/boot/firmware"; };
        };
      };
    };
    usb-ssd = {
      type = "disk";
      content = {
        type = "gpt";
        partitions = {
          boot = {
            name = "BOOT";
            size = "1G";
            type = "EF00";
            content = { type = "filesystem"; format = "vfat"; mountpoint = "/boot"; };
          };
          zfs = {
            size = "100%";
            content = { type = "zfs"; pool = "rpool"; };
          };
        };
      };
    };
  };
}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalMode {
    /// The built-in evaluator; nix when it cannot and nix-instantiate is installed.
    Auto,
    Builtin,
    Nix,
}

/// Where the devices came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    Json(PathBuf),
    BuiltinDefault,
}

/// `disko.devices` of a node.
pub struct NodeConfig {
    pub node: String,
    pub source: ConfigSource,
    pub devices: Value,
}

fn nix_instantiate(path: &Path) -> Result<Value> {
    let expr = "let f = import ./disk-config.nix; lib = { mkDefault = x: x; mkForce = x: x; mkOverride = _: x: x; }; in if builtins.isFunction f then f { inherit lib; config = {}; pkgs = {}; } else f";
    let dir = path.parent().context("config path without a directory")?;
    let file = path
        .file_name()
        .context("config path without a name")?
        .to_string_lossy()
        .into_owned();
    let expr = expr.replace("./disk-config.nix", &format!("./{file}"));
    let out = std::process::Command::new("nix-instantiate")
        .current_dir(dir)
        .args([
            "--store",
            "dummy://",
            "--readonly-mode",
            "--eval",
            "--strict",
            "--json",
            "-E",
            &expr,
        ])
        .output()
        .map_err(|e| {
            anyhow::anyhow!("running nix-instantiate: {e} (install Nix, or use --disko-json FILE)")
        })?;
    if !out.status.success() {
        bail!(
            "nix-instantiate failed on {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("reading nix-instantiate's JSON for {}", path.display()))
}

fn have_nix() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("nix-instantiate").is_file()))
        .unwrap_or(false)
}

/// Evaluates a disko config file to JSON.
pub fn eval_file(path: &Path, mode: EvalMode) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    match mode {
        EvalMode::Nix => nix_instantiate(path),
        EvalMode::Builtin => crate::nixeval::eval(&text, &path.display().to_string()),
        EvalMode::Auto => match crate::nixeval::eval(&text, &path.display().to_string()) {
            Ok(v) => Ok(v),
            Err(e) if e.downcast_ref::<crate::nixeval::Unsupported>().is_some() && have_nix() => {
                nix_instantiate(path)
                    .with_context(|| format!("the built-in evaluator could not ({e}), and"))
            }
            Err(e) => Err(e),
        },
    }
}

/// `disko.devices` from an evaluated config (or from JSON that is already `disko.devices`).
fn devices_of(v: Value, origin: &str) -> Result<Value> {
    if let Some(d) = v.get("disko").and_then(|d| d.get("devices")) {
        return Ok(d.clone());
    }
    if v.get("disk").is_some() {
        return Ok(v);
    }
    bail!("{origin} defines no disko.devices.disk")
}

/// Loads a node's devices: `--disko-json`, else `FLAKE/hosts/NODE/disk-config.nix`, else the
/// cluster's default layout for a known node.
pub fn load(
    flake: &Path,
    node: &str,
    mode: EvalMode,
    disko_json: Option<&Path>,
) -> Result<NodeConfig> {
    if let Some(j) = disko_json {
        let text =
            std::fs::read_to_string(j).with_context(|| format!("reading {}", j.display()))?;
        let v: Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", j.display()))?;
        return Ok(NodeConfig {
            node: node.into(),
            source: ConfigSource::Json(j.into()),
            devices: devices_of(v, &j.display().to_string())?,
        });
    }
    let host = flake.join("hosts").join(node);
    let file = host.join("disk-config.nix");
    if file.is_file() {
        let v = eval_file(&file, mode)?;
        return Ok(NodeConfig {
            node: node.into(),
            source: ConfigSource::File(file.clone()),
            devices: devices_of(v, &file.display().to_string())?,
        });
    }
    if host.is_dir() || CLUSTER_NODES.contains(&node) {
        let v =
            crate::nixeval::eval(DEFAULT_CONFIG, "(built-in default)").expect("the default parses");
        return Ok(NodeConfig {
            node: node.into(),
            source: ConfigSource::BuiltinDefault,
            devices: devices_of(v, "default")?,
        });
    }
    bail!(
        "unknown node '{node}': there is no {} and it is not one of the cluster's nodes ({})",
        host.display(),
        CLUSTER_NODES.join(", ")
    )
}

/// One partition as disko declares it.
#[derive(Debug, Clone)]
pub struct DiskoPart {
    pub attr: String,
    pub label: String,
    pub start: String,
    pub end: String,
    pub type_code: String,
    pub type_guid: Uuid,
    pub priority: i64,
    pub uuid: Option<Uuid>,
    pub content_type: Option<String>,
    pub format: Option<String>,
    pub mountpoint: Option<String>,
}

/// One disk of the config.
#[derive(Debug, Clone)]
pub struct DiskoDisk {
    pub name: String,
    pub device: Option<String>,
    /// In partition-number order.
    pub partitions: Vec<DiskoPart>,
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// disko's partition label: `disk-<disk>-<name>`, or the first 36 hex digits of its SHA-256 when
/// longer than 36 characters.
pub fn disko_label(disk: &str, name: &str) -> String {
    let label = format!("disk-{}-{name}", disk.replace('/', "_"));
    if label.chars().count() > 36 {
        let h = Sha256::digest(label.as_bytes());
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()[..36].to_string()
    } else {
        label
    }
}

impl DiskoDisk {
    /// Reads disk `name` of `devices`.
    pub fn from_devices(devices: &Value, name: &str) -> Result<Self> {
        let disk = devices
            .get("disk")
            .and_then(|d| d.get(name))
            .with_context(|| format!("the config has no disk '{name}'"))?;
        let content = disk
            .get("content")
            .with_context(|| format!("disk '{name}' has no content"))?;
        match s(content, "type") {
            Some("gpt") => {}
            Some(t) => bail!(
                "disk '{name}': content type '{t}' is not handled (pi-burn writes GPT tables only)"
            ),
            None => bail!("disk '{name}': content has no type"),
        }
        let parts = content
            .get("partitions")
            .and_then(Value::as_object)
            .with_context(|| format!("disk '{name}' has no partitions"))?;
        let mut partitions = vec![];
        for (attr, p) in parts {
            let pname = s(p, "name").unwrap_or(attr);
            let label = match s(p, "label") {
                Some(l) if l.chars().count() > 36 => bail!(
                    "disk '{name}', partition '{attr}': label '{l}' is longer than 36 characters"
                ),
                Some(l) => l.to_string(),
                None => disko_label(name, pname),
            };
            let size = match p.get("size") {
                Some(Value::String(v)) => Some(v.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                None | Some(Value::Null) => None,
                Some(v) => bail!("disk '{name}', partition '{attr}': size {v} is not a string"),
            };
            let content_type = p
                .get("content")
                .and_then(|c| s(c, "type"))
                .map(str::to_string);
            let type_code = match s(p, "type") {
                Some(t) => t.to_string(),
                None if content_type.as_deref() == Some("swap") => "8200".into(),
                None => "8300".into(),
            };
            let type_guid = gpt_type(&type_code)
                .with_context(|| format!("disk '{name}', partition '{attr}'"))?;
            let start = s(p, "start").unwrap_or("0").to_string();
            let end = match (s(p, "end"), size.as_deref()) {
                (Some(e), _) => e.to_string(),
                (None, Some("100%")) => "-0".into(),
                (None, Some(sz)) if sz.ends_with('%') => bail!("disk '{name}', partition '{attr}': size '{sz}' (only \"100%\" is a percentage disko passes to sgdisk)"),
                (None, Some(sz)) => format!("+{sz}"),
                (None, None) => bail!("disk '{name}', partition '{attr}' has neither size nor end"),
            };
            let priority = match p.get("priority").and_then(Value::as_i64) {
                Some(n) => n,
                None if type_code.eq_ignore_ascii_case("EF02") => 100,
                None if size.as_deref() == Some("100%") => 9001,
                None => 1000,
            };
            let uuid = s(p, "uuid")
                .map(|u| {
                    Uuid::parse_str(u)
                        .with_context(|| format!("disk '{name}', partition '{attr}': uuid '{u}'"))
                })
                .transpose()?;
            if let Some(ct) = &content_type {
                if !matches!(
                    ct.as_str(),
                    "filesystem"
                        | "zfs"
                        | "swap"
                        | "luks"
                        | "lvm_pv"
                        | "mdraid"
                        | "btrfs"
                        | "bcachefs"
                        | "nodev"
                ) {
                    bail!("disk '{name}', partition '{attr}': content type '{ct}' is not known");
                }
            }
            partitions.push(DiskoPart {
                attr: attr.clone(),
                label,
                start,
                end,
                type_code,
                type_guid,
                priority,
                uuid,
                format: p
                    .get("content")
                    .and_then(|c| s(c, "format"))
                    .map(str::to_string),
                mountpoint: p
                    .get("content")
                    .and_then(|c| s(c, "mountpoint"))
                    .map(str::to_string),
                content_type,
            });
        }
        // By priority, ties in attribute-name order (Nix sorts names by their bytes).
        partitions
            .sort_by(|a, b| (a.priority, a.attr.as_bytes()).cmp(&(b.priority, b.attr.as_bytes())));
        Ok(DiskoDisk {
            name: name.to_string(),
            device: s(disk, "device").map(str::to_string),
            partitions,
        })
    }

    pub fn mounts(&self, mountpoint: &str) -> bool {
        self.partitions
            .iter()
            .any(|p| p.mountpoint.as_deref() == Some(mountpoint))
    }
}

/// The disk names of `devices`, and which one is the SD card (the one mounting /boot/firmware).
pub fn choose_disk(devices: &Value, want: Option<&str>, sd: bool) -> Result<DiskoDisk> {
    let names: Vec<String> = devices
        .get("disk")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    if names.is_empty() {
        bail!("the config declares no disks");
    }
    if let Some(w) = want {
        if !names.iter().any(|n| n == w) {
            bail!(
                "the config has no disk '{w}' (it has: {})",
                names.join(", ")
            );
        }
        return DiskoDisk::from_devices(devices, w);
    }
    let mut candidates = vec![];
    for n in &names {
        let firmware = devices["disk"][n]["content"]["partitions"]
            .as_object()
            .map(|ps| {
                ps.values()
                    .any(|p| p["content"]["mountpoint"] == "/boot/firmware")
            })
            .unwrap_or(false);
        if firmware == sd {
            candidates.push(n.clone());
        }
    }
    match candidates.as_slice() {
        [one] => DiskoDisk::from_devices(devices, one),
        [] if sd => {
            bail!("no disk of the config mounts /boot/firmware (the SD card); name it with --disk")
        }
        [] => bail!("every disk of the config is the SD card; name the SSD with --disk"),
        many => bail!(
            "the config has several candidate disks ({}); choose one with --disk",
            many.join(", ")
        ),
    }
}

/// A position or size in sgdisk's syntax, in sectors.
fn sgdisk_sectors(v: &str, ss: u64) -> Result<u64> {
    let t = v.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .with_context(|| format!("'{v}' is not a size"))?;
    let bytes = |m: u64| {
        n.checked_mul(m)
            .map(|b| b.div_ceil(ss))
            .with_context(|| format!("'{v}' is too large"))
    };
    match unit.to_ascii_uppercase().as_str() {
        "" => Ok(n),
        "K" | "KIB" => bytes(1 << 10),
        "M" | "MIB" => bytes(1 << 20),
        "G" | "GIB" => bytes(1 << 30),
        "T" | "TIB" => bytes(1 << 40),
        "P" | "PIB" => bytes(1 << 50),
        _ => bail!("'{v}' is not a size sgdisk takes (a number of sectors, or K, M, G, T, P)"),
    }
}

/// The partitions of `disk` on a disk of `size` bytes with `ss`-byte sectors, as sgdisk places
/// them; GUIDs from the config's `uuid` or derived from `seed`.
pub fn plan(disk: &DiskoDisk, size: u64, ss: u64, seed: &str) -> Result<DiskPlan> {
    if ss != 512 && ss != 4096 {
        bail!("sector size {ss} is not supported (512 or 4096)");
    }
    let total = size / ss;
    let entries = DiskPlan::gpt_entry_sectors(ss);
    let first_usable = 2 + entries;
    let last_usable = total
        .checked_sub(2 + entries)
        .context("the disk is too small for a GPT")?;
    let align = MIB / ss;
    let aligned_last = ((last_usable + 1) / align * align).saturating_sub(1);
    let mut cursor = first_usable;
    let mut partitions = vec![];
    for (i, p) in disk.partitions.iter().enumerate() {
        let n = i as u32 + 1;
        let what = || format!("disk '{}', partition '{}' ({})", disk.name, p.attr, p.label);
        let start = if p.start == "0" {
            cursor
        } else {
            sgdisk_sectors(&p.start, ss).with_context(what)?.max(cursor)
        };
        let start = start.div_ceil(align) * align;
        let end = if let Some(rel) = p.end.strip_prefix('+') {
            start + sgdisk_sectors(rel, ss).with_context(what)? - 1
        } else if let Some(rel) = p.end.strip_prefix('-') {
            aligned_last
                .checked_sub(sgdisk_sectors(rel, ss).with_context(what)?)
                .with_context(|| format!("{}: ends before the disk begins", what()))?
        } else if p.end == "0" {
            aligned_last
        } else {
            sgdisk_sectors(&p.end, ss).with_context(what)?
        };
        if start > last_usable || end > last_usable || end < start {
            bail!(
                "{}: does not fit a disk of {} ({} sectors of {ss} bytes): it would span sectors {start}-{end}, the last usable is {last_usable}",
                what(),
                crate::layout::human(size),
                total
            );
        }
        partitions.push(PartitionPlan {
            number: n,
            first_lba: start,
            last_lba: end,
            part_type: PartType::Gpt(p.type_guid),
            name: p.label.clone(),
            guid: p
                .uuid
                .unwrap_or_else(|| derive_uuid(seed, &format!("partition-{}", p.label))),
        });
        cursor = end + 1;
    }
    let plan = DiskPlan {
        sector_size: ss,
        size,
        table: TableKind::Gpt,
        disk_guid: derive_uuid(seed, "disk"),
        mbr_id: 0,
        partitions,
    };
    plan.check(&format!("disk '{}'", disk.name))?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_devices() -> Value {
        let text = include_str!("../fixtures/flake/hosts/pi-alpha/disk-config.nix");
        devices_of(crate::nixeval::eval(text, "seed").unwrap(), "seed").unwrap()
    }

    #[test]
    fn the_seed_config_gives_disko_s_labels_types_and_order() {
        let d = choose_disk(&seed_devices(), None, false).unwrap();
        assert_eq!(d.name, "usb-ssd");
        assert_eq!(
            d.device.as_deref(),
            Some("/dev/disk/by-id/usb-Samsung_T7_SERIAL")
        );
        let labels: Vec<&str> = d.partitions.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["disk-usb-ssd-BOOT", "disk-usb-ssd-zfs"]);
        assert_eq!(d.partitions[0].type_code, "EF00");
        assert_eq!(
            d.partitions[1].type_code, "8300",
            "zfs is 8300 unless type is set"
        );
        let sd = choose_disk(&seed_devices(), None, true).unwrap();
        assert_eq!(sd.partitions[0].label, "disk-sdcard-FIRMWARE");
    }

    #[test]
    fn the_seed_ssd_on_500gb_matches_facts() {
        // FACTS.md §5: 976773168 sectors: BOOT 2048-2099199, zfs 2099200-976773119.
        let d = choose_disk(&seed_devices(), None, false).unwrap();
        let p = plan(&d, 976773168 * 512, 512, "s").unwrap();
        let got: Vec<(u64, u64)> = p
            .partitions
            .iter()
            .map(|p| (p.first_lba, p.last_lba))
            .collect();
        assert_eq!(got, [(2048, 2099199), (2099200, 976773119)]);
    }

    #[test]
    fn long_labels_hash_and_swap_is_8200() {
        assert_eq!(disko_label("usb-ssd", "zfs"), "disk-usb-ssd-zfs");
        let long = disko_label("nvme-samsung-990-pro", "encrypted-swap-partition");
        assert_eq!(long.len(), 36);
        assert!(long.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(disko_label("a/b", "c"), "disk-a_b-c");
    }

    #[test]
    fn sgdisk_sizes() {
        assert_eq!(sgdisk_sectors("1G", 512).unwrap(), 2097152);
        assert_eq!(sgdisk_sectors("1G", 4096).unwrap(), 262144);
        assert_eq!(sgdisk_sectors("100K", 4096).unwrap(), 25);
        assert_eq!(sgdisk_sectors("1000", 512).unwrap(), 1000);
        assert!(sgdisk_sectors("1X", 512).is_err());
    }
}
