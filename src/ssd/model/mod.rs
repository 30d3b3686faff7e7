//! A disko GPT disk read from evaluated config JSON, with disko's own defaults applied (disko
//! 878ec37 `lib/types/disk.nix` and `lib/types/gpt.nix`, measured by running the
//! scripts it generates with sgdisk 1.0.9 on image files):
//!
//! - labels `disk-<disk.name>-<part.name>` (disk `name` defaults to the attribute name with `/`
//!   as `_`), hashed when longer than 36 BYTES; an explicit `label` is cut to 36 characters as
//!   sgdisk stores it;
//! - default type 8300 (8200 under swap content); default priority 9001 for `size = "100%"`
//!   (checked first), 100 for exactly `"EF02"`, else 1000; a stable sort by priority over the
//!   attribute names in byte order;
//! - `start`/`end`/`alignment` as strings and the int disko passes to sgdisk;
//! - `attributes` (bit numbers) and `hybrid` MBR entries.
//!
//! Every option disko's types would reject is rejected, and every option pi-burn does not
//! reproduce is refused by name: nothing is ignored.

use crate::disk::geometry::gpt_type;
use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// GPT holds 128 entries; disko's `_index` numbers partitions from 1.
pub const MAX_PARTITIONS: usize = 128;

/// A label in an error message: cut so that a hostile one cannot flood the terminal.
pub fn short(s: &str) -> String {
    const MAX: usize = 48;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(MAX).collect::<String>())
    }
}

/// A hybrid MBR entry that disko adds for a partition (`hybrid = { ... }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hybrid {
    /// `mbrPartitionType` (applied by `sfdisk --part-type`); none: sgdisk's default for the type.
    pub mbr_type: Option<u8>,
    /// `mbrBootableFlag` (applied by `sfdisk --activate`).
    pub bootable: bool,
}

/// What disko will put into a partition later; pi-burn only ever formats plain vfat.
#[derive(Debug, Clone, Default)]
pub struct Content {
    pub kind: Option<String>,
    pub format: Option<String>,
    pub mountpoint: Option<String>,
    /// `extraArgs` of a filesystem: arguments to mkfs that pi-burn cannot reproduce.
    pub extra_args: Vec<String>,
}

/// One partition as disko declares it, with disko's defaults applied.
#[derive(Debug, Clone)]
pub struct DiskoPart {
    pub attr: String,
    /// The `name` option (default: the attribute name).
    pub name: String,
    /// The partition name sgdisk stores.
    pub label: String,
    pub start: String,
    pub end: String,
    /// `--set-alignment` (0: sgdisk's own).
    pub alignment: u64,
    pub type_code: String,
    pub type_guid: Uuid,
    /// The GPT attribute field (bits from `attributes`).
    pub attributes: u64,
    pub priority: i64,
    pub uuid: Option<Uuid>,
    pub hybrid: Option<Hybrid>,
    pub content: Content,
    /// `size` as given ("100%", "1G", ...).
    pub size: String,
}

/// One GPT disk of the config.
#[derive(Debug, Clone)]
pub struct DiskoDisk {
    /// The attribute name under `disko.devices.disk`.
    pub attr: String,
    /// The disk's `name` option, which labels use.
    pub name: String,
    pub device: Option<String>,
    /// `imageSize` (disko's default "2G" when absent).
    pub image_size: Option<String>,
    pub efi_gpt_partition_first: bool,
    /// In partition-number order (`_index` 1, 2, ...).
    pub partitions: Vec<DiskoPart>,
    /// disko's `destroy` (default true, lib/types/disk.nix:25): whether its destroy stage
    /// wipes this disk.
    pub destroy: bool,
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// disko's partition label: `disk-<disk>-<name>`, or the first 36 hex digits of its SHA-256 when
/// longer than 36 bytes (`lib.stringLength` counts bytes).
pub fn disko_label(disk_name: &str, part_name: &str) -> String {
    let label = format!("disk-{disk_name}-{part_name}");
    if label.len() > 36 {
        let h = Sha256::digest(label.as_bytes());
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()[..36].to_string()
    } else {
        label
    }
}

/// Keys a JSON object may have; anything else is refused by name.
fn only_keys(obj: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<()> {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            bail!(
                "{what}: option '{}' is not one pi-burn reproduces (it knows: {}); prepare this disk with disko itself",
                short(k),
                allowed.join(", ")
            );
        }
    }
    Ok(())
}

/// Hooks: empty ones are fine, commands pi-burn would have to run are refused.
fn check_hooks(obj: &Map<String, Value>, what: &str) -> Result<()> {
    for h in ["preCreateHook", "postCreateHook"] {
        match obj.get(h) {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t.trim().is_empty() => {}
            Some(_) => bail!(
                "{what}: option '{h}' runs commands while the table is made, which pi-burn does not do; prepare this disk with disko itself"
            ),
        }
    }
    Ok(())
}

/// A string option; `None` when absent or null.
fn opt_str(obj: &Map<String, Value>, key: &str, what: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(v)) => Ok(Some(v.clone())),
        Some(v) => bail!("{what}: option '{key}' must be a string, not {}", kind(v)),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an attribute set",
    }
}

fn opt_int(obj: &Map<String, Value>, key: &str, what: &str) -> Result<Option<i64>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(v) => bail!("{what}: option '{key}' must be an integer, not {}", kind(v)),
    }
}

/// `type`: 4 hex digits or a GUID (disko's strMatching), known to pi-burn.
fn part_type(t: &str, what: &str) -> Result<Uuid> {
    let hex4 = t.len() == 4 && t.chars().all(|c| c.is_ascii_hexdigit());
    let guid = Uuid::parse_str(t).is_ok() && t.len() == 36;
    if !hex4 && !guid {
        bail!(
            "{what}: type '{}' is neither 4 hex digits nor a GUID (disko rejects it)",
            short(t)
        );
    }
    let g = gpt_type(t).with_context(|| what.to_string())?;
    if g.is_nil() {
        bail!("{what}: type {t} is the all-zero GUID, which marks an unused entry: the partition would vanish");
    }
    Ok(g)
}

/// `size`: "100%" or `[0-9]+[KMGTP]?` (disko's type).
fn check_size(size: &str, what: &str) -> Result<()> {
    let digits = size.trim_end_matches(['K', 'M', 'G', 'T', 'P']);
    let ok = size == "100%"
        || (!digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit())
            && size.len() - digits.len() <= 1);
    if !ok {
        bail!(
            "{what}: size '{}' is not one disko accepts (\"100%\" or a number with K, M, G, T or P)",
            short(size)
        );
    }
    Ok(())
}

/// A label as sgdisk stores it; characters it would store differently are refused.
fn stored_label(label: &str, what: &str) -> Result<String> {
    if let Some(c) = label
        .chars()
        .find(|c| matches!(c, ':' | '"' | '$' | '`' | '\\') || c.is_control())
    {
        bail!(
            "{what}: label '{}' contains {c:?}: disko passes it through the shell and sgdisk's NUM:NAME syntax, so the stored name would differ",
            short(label)
        );
    }
    if label.chars().any(|c| (c as u32) > 0xFFFF) {
        bail!(
            "{what}: label '{}' has a character outside the Basic Multilingual Plane; pi-burn does not reproduce how sgdisk cuts such names",
            short(label)
        );
    }
    Ok(label.chars().take(36).collect())
}

fn hybrid(v: &Value, what: &str) -> Result<Option<Hybrid>> {
    let obj = match v {
        Value::Null => return Ok(None),
        Value::Object(o) => o,
        v => bail!(
            "{what}: option 'hybrid' must be an attribute set, not {}",
            kind(v)
        ),
    };
    only_keys(
        obj,
        &["mbrPartitionType", "mbrBootableFlag"],
        &format!("{what}, hybrid"),
    )?;
    let mbr_type = opt_str(obj, "mbrPartitionType", what)?
        .map(|t| {
            match crate::util::text::hex(&t, false, 2) {
                Some(b) if b != 0 && t.trim() == t => Ok(b as u8),
                _ => bail!(
                    "{what}: hybrid.mbrPartitionType '{}' is not an MBR type (one or two hex digits, like 0x0c)",
                    short(&t)
                ),
            }
        })
        .transpose()?;
    let bootable = match obj.get("mbrBootableFlag") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => bail!(
            "{what}: hybrid.mbrBootableFlag must be a boolean, not {}",
            kind(v)
        ),
    };
    Ok(Some(Hybrid { mbr_type, bootable }))
}

fn content(v: Option<&Value>, what: &str) -> Result<Content> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(Content::default()),
        Some(Value::Object(o)) => o,
        Some(v) => bail!("{what}: content must be an attribute set, not {}", kind(v)),
    };
    let kind_ = opt_str(obj, "type", what)?;
    match kind_.as_deref() {
        Some(
            "filesystem" | "zfs" | "swap" | "luks" | "lvm_pv" | "mdraid" | "btrfs" | "bcachefs"
            | "nodev",
        ) => {}
        Some(t) => bail!("{what}: content type '{}' is not known", short(t)),
        None => bail!("{what}: content has no type"),
    }
    let extra_args = match obj.get("extraArgs") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .with_context(|| format!("{what}: content.extraArgs must be a list of strings"))?,
        Some(v) => bail!("{what}: content.extraArgs must be a list, not {}", kind(v)),
    };
    Ok(Content {
        kind: kind_,
        format: opt_str(obj, "format", what)?,
        mountpoint: opt_str(obj, "mountpoint", what)?,
        extra_args,
    })
}

/// The options of a gpt.nix partition.
pub(crate) const PART_KEYS: &[&str] = &[
    "type",
    "attributes",
    "device",
    "priority",
    "name",
    "uuid",
    "label",
    "size",
    "alignment",
    "start",
    "end",
    "content",
    "hybrid",
    "_index",
];

fn partition(disk_name: &str, attr: &str, p: &Value, what: &str) -> Result<DiskoPart> {
    let obj = p
        .as_object()
        .with_context(|| format!("{what}: not an attribute set"))?;
    only_keys(obj, PART_KEYS, what)?;
    let name = opt_str(obj, "name", what)?.unwrap_or_else(|| attr.to_string());
    let label = match opt_str(obj, "label", what)? {
        Some(l) => stored_label(&l, what)?,
        None => stored_label(&disko_label(disk_name, &name), what)?,
    };
    let size = opt_str(obj, "size", what)?.unwrap_or_else(|| "0".into());
    check_size(&size, what)?;
    let content = content(obj.get("content"), what)?;
    let type_code = match opt_str(obj, "type", what)? {
        Some(t) => t,
        None if content.kind.as_deref() == Some("swap") => "8200".into(),
        None => "8300".into(),
    };
    let type_guid = part_type(&type_code, what)?;
    let start = opt_str(obj, "start", what)?.unwrap_or_else(|| "0".into());
    let end = opt_str(obj, "end", what)?.unwrap_or_else(|| {
        if size == "100%" {
            "-0".into()
        } else {
            format!("+{size}")
        }
    });
    let alignment = match opt_int(obj, "alignment", what)? {
        Some(a) => u64::try_from(a)
            .ok()
            .filter(|a| *a == 0 || a.is_power_of_two())
            .with_context(|| {
                format!("{what}: alignment {a} is not 0 or a power of two (pi-burn reproduces sgdisk's alignment for powers of two only)")
            })?,
        None if start.ends_with('s') || end.ends_with('s') => 1,
        None => 0,
    };
    let priority = match opt_int(obj, "priority", what)? {
        Some(p) => p,
        None if size == "100%" => 9001,
        None if type_code == "EF02" => 100,
        None => 1000,
    };
    let mut attributes = 0u64;
    match obj.get("attributes") {
        None | Some(Value::Null) => {}
        Some(Value::Array(bits)) => {
            for b in bits {
                match b.as_u64() {
                    Some(n) if n < 64 => attributes |= 1 << n,
                    _ => bail!("{what}: attribute bit {b} is not a number from 0 to 63"),
                }
            }
        }
        Some(v) => bail!(
            "{what}: option 'attributes' must be a list of bit numbers, not {}",
            kind(v)
        ),
    }
    let uuid = opt_str(obj, "uuid", what)?
        .map(|u| {
            let g = Uuid::parse_str(&u)
                .ok()
                .filter(|_| u.len() == 36)
                .with_context(|| {
                    format!(
                        "{what}: uuid '{}' is not a GUID (8-4-4-4-12 hex digits)",
                        short(&u)
                    )
                })?;
            if g.is_nil() {
                bail!("{what}: uuid is the all-zero GUID");
            }
            Ok(g)
        })
        .transpose()?;
    opt_str(obj, "device", what)?;
    Ok(DiskoPart {
        attr: attr.to_string(),
        name,
        label,
        start,
        end,
        alignment,
        type_code,
        type_guid,
        attributes,
        priority,
        uuid,
        hybrid: hybrid(obj.get("hybrid").unwrap_or(&Value::Null), what)?,
        content,
        size,
    })
}

const DISK_KEYS: &[&str] = &[
    "type",
    "device",
    "name",
    "content",
    "imageName",
    "imageSize",
    "destroy",
    "preCreateHook",
    "postCreateHook",
    "preMountHook",
    "postMountHook",
    "preUnmountHook",
    "postUnmountHook",
];

/// The options of gpt.nix itself.
pub(crate) const GPT_KEYS: &[&str] = &[
    "type",
    "device",
    "partitions",
    "efiGptPartitionFirst",
    "preCreateHook",
    "postCreateHook",
    "preMountHook",
    "postMountHook",
    "preUnmountHook",
    "postUnmountHook",
];

/// Partitions (in disko's order) that disko could not tell apart, or that a flake evaluation
/// numbers otherwise than pi-burn: refused.
fn check_distinct(partitions: &[DiskoPart], parts: &Map<String, Value>, what: &str) -> Result<()> {
    for (i, p) in partitions.iter().enumerate() {
        for q in &partitions[..i] {
            if p.name == q.name {
                bail!(
                    "{what}: partitions '{}' and '{}' share the name '{}': disko numbers partitions by name and would write only one of them",
                    short(&q.attr), short(&p.attr), short(&p.name)
                );
            }
            if p.label == q.label {
                bail!(
                    "{what}: partitions '{}' and '{}' would both be labelled '{}': NixOS could not tell them apart",
                    short(&q.attr), short(&p.attr), short(&p.label)
                );
            }
            if p.uuid.is_some() && p.uuid == q.uuid {
                bail!(
                    "{what}: partitions '{}' and '{}' have the same uuid",
                    short(&q.attr),
                    short(&p.attr)
                );
            }
        }
    }
    // A flake evaluation carries disko's own computed values: they must agree with ours.
    for (i, p) in partitions.iter().enumerate() {
        let raw = &parts[&p.attr];
        if let Some(idx) = raw.get("_index").and_then(Value::as_i64) {
            if idx != i as i64 + 1 {
                bail!(
                    "{what}, partition '{}': disko numbers it {idx}, pi-burn computed {}; refusing a table that could differ from disko's",
                    short(&p.attr),
                    i + 1
                );
            }
        }
    }
    Ok(())
}

impl DiskoDisk {
    /// Reads disk `attr` of `devices` (`disko.devices`), named `origin` in errors.
    pub fn from_devices(devices: &Value, attr: &str, origin: &str) -> Result<Self> {
        let disk = devices
            .get("disk")
            .and_then(|d| d.get(attr))
            .and_then(Value::as_object)
            .with_context(|| format!("{origin}: the config has no disk '{}'", short(attr)))?;
        let what = format!("{origin}: disk '{}'", short(attr));
        only_keys(disk, DISK_KEYS, &what)?;
        check_hooks(disk, &what)?;
        if let Some(t) = opt_str(disk, "type", &what)? {
            if t != "disk" {
                bail!("{what}: type '{}' is not \"disk\"", short(&t));
            }
        }
        let name = opt_str(disk, "name", &what)?.unwrap_or_else(|| attr.replace('/', "_"));
        let content = disk
            .get("content")
            .and_then(Value::as_object)
            .with_context(|| format!("{what} has no content"))?;
        match s(&Value::Object(content.clone()), "type") {
            Some("gpt") => {}
            Some(t) => bail!(
                "{what}: content type '{}' is not handled (pi-burn writes GPT tables only)",
                short(t)
            ),
            None => bail!("{what}: content has no type"),
        }
        only_keys(content, GPT_KEYS, &format!("{what}, content"))?;
        check_hooks(content, &format!("{what}, content"))?;
        let destroy = match disk.get("destroy") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(v) => bail!("{what}: destroy must be a boolean, not {}", kind(v)),
        };
        let efi_gpt_partition_first = match content.get("efiGptPartitionFirst") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(v) => bail!(
                "{what}: efiGptPartitionFirst must be a boolean, not {}",
                kind(v)
            ),
        };
        let parts = match content.get("partitions") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(o)) => o.clone(),
            Some(v) => bail!(
                "{what}: partitions must be an attribute set, not {}",
                kind(v)
            ),
        };
        if parts.len() > MAX_PARTITIONS {
            bail!(
                "{what} has {} partitions; a GPT holds at most {MAX_PARTITIONS}",
                parts.len()
            );
        }
        // Nix lists attributes sorted by their bytes; serde_json's map may not keep that order.
        let mut attrs: Vec<&String> = parts.keys().collect();
        attrs.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut partitions = vec![];
        for a in attrs {
            let pw = format!("{what}, partition '{}'", short(a));
            partitions.push(partition(&name, a, &parts[a], &pw)?);
        }
        // lib.sort is stable: ties keep attribute-name order.
        partitions.sort_by_key(|p| p.priority);
        check_distinct(&partitions, &parts, &what)?;
        let hybrids = partitions.iter().filter(|p| p.hybrid.is_some()).count();
        if hybrids > 3 {
            bail!("{what}: {hybrids} partitions ask for a hybrid MBR entry; an MBR holds at most 3 besides the protective one");
        }
        Ok(DiskoDisk {
            attr: attr.to_string(),
            name,
            device: opt_str(disk, "device", &what)?,
            image_size: opt_str(disk, "imageSize", &what)?,
            efi_gpt_partition_first,
            partitions,
            destroy,
        })
    }
}

/// The disk names of `devices`, and which one is the SD card (the one mounting /boot/firmware).
pub fn choose_disk(
    devices: &Value,
    want: Option<&str>,
    sd: bool,
    origin: &str,
) -> Result<DiskoDisk> {
    let names: Vec<String> = devices
        .get("disk")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    if names.is_empty() {
        bail!("{origin}: the config declares no disks");
    }
    if let Some(w) = want {
        if !names.iter().any(|n| n == w) {
            bail!(
                "{origin}: the config has no disk '{}' (it has: {})",
                short(w),
                names.join(", ")
            );
        }
        return DiskoDisk::from_devices(devices, w, origin);
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
        [one] => DiskoDisk::from_devices(devices, one, origin),
        [] if sd => {
            bail!("{origin}: no disk of the config mounts /boot/firmware (the SD card); name it with --disk")
        }
        [] => bail!("{origin}: every disk of the config is the SD card; name the SSD with --disk"),
        many => bail!(
            "{origin}: the config has several candidate disks ({}); choose one with --disk",
            many.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests;
