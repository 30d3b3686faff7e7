//! What the kernel says about a disk: sysfs, /dev/disk/by-id, mountinfo and swaps, read from
//! roots that tests can replace with fixture trees.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// Where to read from: `/sys`, `/dev`, `/proc/self/mountinfo`, `/proc/swaps` on a real system.
#[derive(Debug, Clone)]
pub struct SysTree {
    pub sys: PathBuf,
    pub dev: PathBuf,
    pub mountinfo: PathBuf,
    pub swaps: PathBuf,
}

impl SysTree {
    pub fn system() -> Self {
        SysTree {
            sys: "/sys".into(),
            dev: "/dev".into(),
            mountinfo: "/proc/self/mountinfo".into(),
            swaps: "/proc/swaps".into(),
        }
    }
}

/// A partition of a disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartInfo {
    pub name: String,
    pub dev: (u64, u64),
    pub number: u32,
    pub label: Option<String>,
    pub size: u64,
}

/// A whole disk as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiskInfo {
    /// Kernel name, e.g. `sdb`, `mmcblk0`, `loop3`.
    pub name: String,
    pub dev: (u64, u64),
    pub size: u64,
    pub logical_sector_size: u64,
    pub removable: bool,
    pub read_only: bool,
    pub transport: String,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub serial: Option<String>,
    pub by_id: Vec<String>,
    pub partitions: Vec<PartInfo>,
    /// (what, holder) pairs: device-mapper, md, LUKS, ZFS... using the disk or a partition.
    pub holders: Vec<(String, String)>,
    /// A loop device's backing file.
    pub backing_file: Option<String>,
}

impl DiskInfo {
    /// Vendor and model, as a person reads them ("unknown model" when sysfs says neither).
    pub fn model_text(&self) -> String {
        let m = [self.vendor.as_deref(), self.model.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if m.is_empty() {
            "unknown model".into()
        } else {
            m
        }
    }
}

fn read_trim(p: &Path) -> Option<String> {
    fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn read_num(p: &Path) -> Option<u64> {
    read_trim(p)?.parse().ok()
}

fn parse_dev(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The sysfs directory of a device number, canonical.
fn sys_dir(t: &SysTree, dev: (u64, u64)) -> Result<PathBuf> {
    let link = t.sys.join("dev/block").join(format!("{}:{}", dev.0, dev.1));
    fs::canonicalize(&link).with_context(|| {
        format!(
            "device {}:{} is not in {}",
            dev.0,
            dev.1,
            link.parent().unwrap().display()
        )
    })
}

/// Is `dev` a partition? Then the name of its disk.
pub fn parent_disk(t: &SysTree, dev: (u64, u64)) -> Result<Option<String>> {
    let dir = sys_dir(t, dev)?;
    if dir.join("partition").exists() {
        let parent = dir
            .parent()
            .and_then(|p| p.file_name())
            .context("partition without a parent disk")?;
        return Ok(Some(parent.to_string_lossy().into_owned()));
    }
    Ok(None)
}

/// The kernel name of a device number.
pub fn name_of(t: &SysTree, dev: (u64, u64)) -> Result<String> {
    Ok(sys_dir(t, dev)?
        .file_name()
        .context("no name")?
        .to_string_lossy()
        .into_owned())
}

/// Looks a serial number up the device tree (USB keeps it on the USB device, several levels up).
fn find_serial(dir: &Path) -> Option<String> {
    let mut d = dir.join("device");
    if let Some(s) = read_trim(&d.join("serial")) {
        return Some(s);
    }
    d = fs::canonicalize(&d).ok()?;
    for _ in 0..8 {
        if let Some(s) = read_trim(&d.join("serial")) {
            return Some(s);
        }
        d = d.parent()?.to_path_buf();
    }
    None
}

fn transport(dir: &Path, name: &str) -> String {
    let s = dir.to_string_lossy();
    let t = if name.starts_with("loop") {
        "loop"
    } else if s.contains("/usb") {
        "usb"
    } else if name.starts_with("mmcblk") || s.contains("/mmc_host/") {
        "mmc"
    } else if name.starts_with("nvme") || s.contains("/nvme/") {
        "nvme"
    } else if s.contains("/virtio") {
        "virtio"
    } else if s.contains("/ata") {
        "sata"
    } else if s.contains("/host") && s.contains("/target") {
        "scsi"
    } else {
        "unknown"
    };
    t.to_string()
}

fn holders_of(dir: &Path, what: &str, out: &mut Vec<(String, String)>) {
    if let Ok(rd) = fs::read_dir(dir.join("holders")) {
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for h in names {
            out.push((what.to_string(), h));
        }
    }
}

/// Everything about the whole disk with device number `dev`.
pub fn inspect(t: &SysTree, dev: (u64, u64)) -> Result<DiskInfo> {
    let dir = sys_dir(t, dev)?;
    let name = dir
        .file_name()
        .context("no name")?
        .to_string_lossy()
        .into_owned();
    if dir.join("partition").exists() {
        bail!("{name} is a partition, not a whole disk");
    }
    let mut partitions = vec![];
    let mut holders = vec![];
    holders_of(&dir, &name, &mut holders);
    if let Ok(rd) = fs::read_dir(&dir) {
        let mut dirs: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.join("partition").exists())
            .collect();
        dirs.sort();
        for p in dirs {
            let pname = p.file_name().unwrap().to_string_lossy().into_owned();
            let uevent = fs::read_to_string(p.join("uevent")).unwrap_or_default();
            let label = uevent
                .lines()
                .find_map(|l| l.strip_prefix("PARTNAME="))
                .map(str::to_string);
            partitions.push(PartInfo {
                dev: read_trim(&p.join("dev"))
                    .as_deref()
                    .and_then(parse_dev)
                    .unwrap_or((0, 0)),
                number: read_num(&p.join("partition")).unwrap_or(0) as u32,
                size: read_num(&p.join("size")).unwrap_or(0) * 512,
                label,
                name: pname.clone(),
            });
            holders_of(&p, &pname, &mut holders);
        }
    }
    let mut by_id = vec![];
    if let Ok(rd) = fs::read_dir(t.dev.join("disk/by-id")) {
        for e in rd.filter_map(|e| e.ok()) {
            if let Ok(target) = fs::read_link(e.path()) {
                if target
                    .file_name()
                    .map(|f| f.to_string_lossy() == name)
                    .unwrap_or(false)
                {
                    by_id.push(e.path().display().to_string());
                }
            }
        }
    }
    by_id.sort();
    Ok(DiskInfo {
        size: read_num(&dir.join("size")).unwrap_or(0) * 512,
        logical_sector_size: read_num(&dir.join("queue/logical_block_size")).unwrap_or(512),
        removable: read_num(&dir.join("removable")) == Some(1),
        read_only: read_num(&dir.join("ro")) == Some(1),
        transport: transport(&dir, &name),
        model: read_trim(&dir.join("device/model")).or_else(|| read_trim(&dir.join("device/name"))),
        vendor: read_trim(&dir.join("device/vendor")),
        serial: find_serial(&dir),
        by_id,
        partitions,
        holders,
        backing_file: read_trim(&dir.join("loop/backing_file")),
        name,
        dev,
    })
}

/// All whole disks the kernel knows (no partitions, no empty loop devices, no ram/zram).
/// A sort key that orders digit runs by value: ("loop", 2) < ("loop", 10).
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut out = vec![];
    let mut text = String::new();
    let mut digits = String::new();
    for c in name.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                out.push((
                    std::mem::take(&mut text),
                    digits.parse().unwrap_or(u64::MAX),
                ));
                digits.clear();
            }
            text.push(c);
        }
    }
    out.push((text, digits.parse().unwrap_or(0)));
    out
}

pub fn list_disks(t: &SysTree) -> Vec<(u64, u64)> {
    let mut out = vec![];
    if let Ok(rd) = fs::read_dir(t.sys.join("block")) {
        let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        // Natural order: loop2 before loop10, sdb before sdaa.
        names.sort_by_key(|p| natural_key(&p.file_name().unwrap_or_default().to_string_lossy()));
        for p in names {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("ram") || name.starts_with("zram") {
                continue;
            }
            if read_num(&p.join("size")).unwrap_or(0) == 0 {
                continue;
            }
            if let Some(d) = read_trim(&p.join("dev")).as_deref().and_then(parse_dev) {
                out.push(d);
            }
        }
    }
    out
}

/// One line of mountinfo: the device number and where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub dev: (u64, u64),
    pub mountpoint: String,
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v as char);
            i += 4;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

pub fn mounts(t: &SysTree) -> Result<Vec<Mount>> {
    let text = fs::read_to_string(&t.mountinfo)
        .with_context(|| format!("reading {}", t.mountinfo.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some(Mount {
                dev: parse_dev(f.get(2)?)?,
                mountpoint: unescape(f.get(4)?),
            })
        })
        .collect())
}

/// Kernel names of the block devices in active swap.
pub fn swaps(t: &SysTree) -> Result<Vec<String>> {
    let text = match fs::read_to_string(&t.swaps) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("reading {}", t.swaps.display())),
    };
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|p| p.starts_with("/dev/"))
        .map(|p| {
            // Resolved inside this tree's /dev (symlinks such as /dev/mapper/x, /dev/disk/...).
            let path = t.dev.join(p.trim_start_matches("/dev/"));
            fs::canonicalize(&path)
                .unwrap_or(path)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect())
}

/// The device number of a block device by kernel name.
pub fn dev_of_name(t: &SysTree, name: &str) -> Option<(u64, u64)> {
    read_trim(&t.sys.join("class/block").join(name).join("dev"))
        .as_deref()
        .and_then(parse_dev)
}

#[cfg(test)]
mod natural_tests {
    use super::natural_key;

    #[test]
    fn loop2_sorts_before_loop10() {
        let mut v = vec!["loop10", "sdb", "loop2", "sda", "nvme0n1", "loop1"];
        v.sort_by_key(|n| natural_key(n));
        assert_eq!(v, ["loop1", "loop2", "loop10", "nvme0n1", "sda", "sdb"]);
    }
}
