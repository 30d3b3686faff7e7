//! Targets: block devices, inspected and checked before anything is written to them.

pub mod device;
pub mod sys;
pub mod sysfs;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use sysfs::{DiskInfo, SysTree};

/// A path the user named, resolved to a block device.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub given: PathBuf,
    pub canonical: PathBuf,
    pub dev: (u64, u64),
}

/// Resolves `path` (following by-id symlinks) to a block device; anything else is refused.
pub fn resolve(path: &Path) -> Result<Resolved> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let canonical = std::fs::canonicalize(path).with_context(|| {
        format!(
            "{} does not exist (`pi-burn devices` lists the disks here)",
            path.display()
        )
    })?;
    let meta = std::fs::metadata(&canonical)
        .with_context(|| format!("reading {}", canonical.display()))?;
    if !meta.file_type().is_block_device() {
        bail!(
            "{} is not a block device (`pi-burn devices` lists the disks here)",
            path.display()
        );
    }
    let rdev = meta.rdev();
    Ok(Resolved {
        given: path.to_path_buf(),
        canonical,
        dev: (sys::major(rdev), sys::minor(rdev)),
    })
}

/// What the user allowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allow {
    pub fixed_disk: bool,
}

/// Mount points that belong to the running system.
const SYSTEM_MOUNTS: &[&str] = &[
    "/",
    "/boot",
    "/boot/efi",
    "/boot/firmware",
    "/nix",
    "/nix/store",
    "/home",
    "/usr",
    "/var",
];

/// Everything that forbids writing to `disk`, one reason each. Empty: the disk may be written.
pub fn blockers(t: &SysTree, disk: &DiskInfo, allow: Allow) -> Result<Vec<String>> {
    let mut out = in_use(t, disk)?;
    if disk.read_only {
        out.push(format!("{} is read-only", disk.name));
    }
    if disk.size == 0 {
        out.push(format!("{} has no medium (size 0)", disk.name));
    }
    let portable = disk.removable || matches!(disk.transport.as_str(), "usb" | "mmc" | "loop");
    if !portable && !allow.fixed_disk {
        out.push(format!(
            "{} is a fixed {} disk, not removable, USB or MMC (pass --allow-fixed-disk if you mean it)",
            disk.name, disk.transport
        ));
    }
    Ok(out)
}

/// What uses `disk` now: mounts, swap, holders (device-mapper, md, LUKS, ZFS), a deleted
/// backing file. Empty: nothing the kernel shows.
pub fn in_use(t: &SysTree, disk: &DiskInfo) -> Result<Vec<String>> {
    let mounts = sysfs::mounts(t)?;
    let swaps = sysfs::swaps(t)?;
    let mut out = vec![];
    let mut devs: Vec<(String, (u64, u64))> = vec![(disk.name.clone(), disk.dev)];
    devs.extend(disk.partitions.iter().map(|p| (p.name.clone(), p.dev)));
    // Holders count as the disk too: a root filesystem on LUKS or LVM on this disk.
    for (what, holder) in &disk.holders {
        out.push(format!(
            "{what} is in use by {holder} (device-mapper, md, LUKS or ZFS)"
        ));
        if let Some(d) = sysfs::dev_of_name(t, holder) {
            devs.push((holder.clone(), d));
        }
    }
    for (name, dev) in &devs {
        for m in mounts.iter().filter(|m| m.dev == *dev) {
            if SYSTEM_MOUNTS.contains(&m.mountpoint.as_str()) {
                out.push(format!(
                    "{name} holds {} of the running system",
                    m.mountpoint
                ));
            } else {
                out.push(format!("{name} is mounted at {}", m.mountpoint));
            }
        }
        if swaps.iter().any(|s| s == name) {
            out.push(format!("{name} is in use as swap"));
        }
    }
    // A loop device whose file was deleted still takes writes, into a file nobody can reach.
    if let Some(file) = disk
        .backing_file
        .as_deref()
        .and_then(|f| f.strip_suffix(" (deleted)"))
    {
        out.push(format!(
            "{} is in use by a deleted file ({file}): what is written there is lost",
            disk.name
        ));
    }
    Ok(out)
}

/// A whole disk the user named: resolved (by-id links followed) and inspected.
#[derive(Debug, Clone)]
pub struct Disk {
    pub tree: SysTree,
    pub resolved: Resolved,
    pub info: DiskInfo,
}

impl Disk {
    /// Resolves and inspects `path`: a whole-disk block device (a partition is refused,
    /// naming its disk). `hint` follows the error when `path` is no block device at all.
    pub fn open(path: &Path, hint: Option<&str>) -> Result<Disk> {
        let tree = SysTree::system();
        let resolved = resolve(path).map_err(|e| match hint {
            Some(h) => crate::error::Hinted {
                inner: e,
                hint: h.to_string(),
            }
            .into(),
            None => e,
        })?;
        let info = inspect_whole_disk(&tree, &resolved)?;
        // A watched run's parent watches it from now on (crate::watch).
        sys::tell(&format!(
            "device\t{}\t{}",
            resolved.canonical.display(),
            info.name
        ));
        Ok(Disk {
            tree,
            resolved,
            info,
        })
    }

    /// The canonical path (`/dev/sdb`).
    pub fn path(&self) -> &Path {
        &self.resolved.canonical
    }

    /// Every reason not to write to it, including that this user may not open it for writing
    /// and that another program holds it open exclusively (another pi-burn writing it).
    pub fn blockers(&self, allow: Allow) -> Result<Vec<String>> {
        let mut out = blockers(&self.tree, &self.info, allow)?;
        if let Some(why) = not_writable(self.path()) {
            out.push(why);
        }
        if out.is_empty() && held_exclusively(self.path()) {
            out.push(format!(
                "{} is held open exclusively (a mount, RAID, LVM, LUKS, or another pi-burn writing it)",
                self.path().display()
            ));
        }
        Ok(out)
    }
}

/// Why this process may not open `path` for writing, if it may not (a non-root user).
pub fn not_writable(path: &Path) -> Option<String> {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(_) => None,
        Err(e) if e.raw_os_error() == Some(libc::EACCES) || e.raw_os_error() == Some(libc::EPERM) => Some(format!(
            "{} cannot be opened for writing by this user (writing a disk needs root: sudo pi-burn ...)",
            path.display()
        )),
        // Busy, no medium and the like are named by the other checks or when it is opened.
        Err(_) => None,
    }
}

/// Whether something holds `path` open exclusively (O_EXCL on a block device answers EBUSY:
/// mounted, claimed by the kernel, or opened O_EXCL by another pi-burn writing it).
pub fn held_exclusively(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(_) => false,
        Err(e) => e.raw_os_error() == Some(libc::EBUSY),
    }
}

/// A disk every safety rule let through: the only kind of device the write engine is given.
/// It carries what the disk held when it was claimed (read by the caller's reader), so that
/// what is shown before the user agrees needs no more I/O.
#[derive(Debug, Clone)]
pub struct Claimed(Disk, String);

impl Claimed {
    /// Refuses `disk` (exit 4) naming every blocker, or claims it; `holds` says what the disk
    /// (its path, its size) holds now.
    pub fn claim(
        disk: Disk,
        allow: Allow,
        holds: impl FnOnce(&Path, u64) -> String,
    ) -> Result<Claimed> {
        let blocked = disk.blockers(allow)?;
        if !blocked.is_empty() {
            bail!(crate::error::Refused(format!(
                "refusing {}: {}",
                disk.path().display(),
                blocked.join("; ")
            )));
        }
        let now = holds(disk.path(), disk.info.size);
        Ok(Claimed(disk, now))
    }

    pub fn disk(&self) -> &Disk {
        &self.0
    }

    /// What the disk held when it was claimed, in one line.
    pub fn holds(&self) -> &str {
        &self.1
    }

    /// Opened exclusively, its identity checked again against what was shown.
    pub fn open_for_writing(&self) -> Result<device::OpenDevice> {
        device::open_exclusive(&self.0.tree, &self.0.resolved, &self.0.info)
    }
}

/// Inspects the device behind `r`: a partition is refused, naming its disk.
pub fn inspect_whole_disk(t: &SysTree, r: &Resolved) -> Result<DiskInfo> {
    if let Some(parent) = sysfs::parent_disk(t, r.dev)? {
        let name = sysfs::name_of(t, r.dev)?;
        bail!(
            "{} ({name}) is a partition of /dev/{parent}; give the whole disk, /dev/{parent}",
            r.given.display()
        );
    }
    sysfs::inspect(t, r.dev)
}

#[cfg(test)]
mod tests;
