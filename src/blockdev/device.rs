//! A block device opened to be written: exclusively, its identity checked again right before
//! the first write; its partition table reread afterwards; and a reader that bypasses the page
//! cache (O_DIRECT), to read back what the medium holds. The write order is the engine's
//! (`write/`); this module only opens, reads and asks the kernel.

use super::sys;
use super::sysfs::{self, DiskInfo, SysTree};
use super::Resolved;
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

pub struct OpenDevice {
    pub file: File,
    pub path: PathBuf,
    pub size: u64,
    pub sector_size: u64,
}

/// Opens the disk for writing with O_EXCL (refused while mounted or claimed by the kernel) and
/// checks it is still the disk that was shown: same device number, size, sector size, serial.
pub fn open_exclusive(t: &SysTree, r: &Resolved, shown: &DiskInfo) -> Result<OpenDevice> {
    let path = r.canonical.clone();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_EXCL | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::EBUSY) {
                anyhow::Error::new(crate::error::Refused(format!(
                    "{} is busy: something holds it open exclusively (a mount, RAID, LVM, LUKS, or another pi-burn)",
                    path.display()
                )))
            } else {
                anyhow::Error::new(e).context(format!("opening {} for writing", path.display()))
            }
        })?;
    let rdev = sys::rdev_of(&file)?;
    let dev = (sys::major(rdev), sys::minor(rdev));
    if dev != shown.dev {
        bail!(
            "{} changed: it is now device {}:{}, not {}:{}; nothing was written",
            path.display(),
            dev.0,
            dev.1,
            shown.dev.0,
            shown.dev.1
        );
    }
    let size = sys::size_bytes(&file)
        .with_context(|| format!("reading the size of {}", path.display()))?;
    let sector_size = sys::logical_sector_size(&file)
        .with_context(|| format!("reading the sector size of {}", path.display()))?;
    if size != shown.size || sector_size != shown.logical_sector_size {
        bail!(
            "{} changed since it was shown ({size} bytes, {sector_size}-byte sectors now; {} and {} before); nothing was written",
            path.display(),
            shown.size,
            shown.logical_sector_size
        );
    }
    let now = sysfs::inspect(t, dev)?;
    if now.serial != shown.serial {
        bail!(
            "{} changed since it was shown (serial {:?}, was {:?}); nothing was written",
            path.display(),
            now.serial,
            shown.serial
        );
    }
    Ok(OpenDevice {
        file,
        path,
        size,
        sector_size,
    })
}

/// Asks the kernel to reread the table, retrying while busy; then lets udev settle.
pub fn reread(dev: &OpenDevice, progress: &dyn Progress) {
    for attempt in 0..6 {
        match sys::reread_partitions(&dev.file) {
            Ok(()) => break,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 5 => {
                std::thread::sleep(std::time::Duration::from_millis(250 << attempt));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                // Loop devices without partition scanning do not reread.
                break;
            }
            Err(e) => {
                progress.notice(&format!(
                    "warning: the kernel did not reread the partition table of {} ({e}); the card is written, replug it to see the new partition",
                    dev.path.display()
                ));
                return;
            }
        }
    }
    if std::path::Path::new("/run/udev/control").exists() {
        let _ = std::process::Command::new("udevadm")
            .args(["settle", "--timeout=10"])
            .status();
    }
}

/// A buffer aligned for O_DIRECT, without unsafe code: a Vec with room to spare, used from
/// its first 4096-aligned byte.
struct Aligned {
    buf: Vec<u8>,
}

impl Aligned {
    const ALIGN: usize = 4096;

    fn new(len: usize) -> Self {
        Aligned {
            buf: vec![0u8; len + Self::ALIGN],
        }
    }

    fn slice(&mut self, len: usize) -> &mut [u8] {
        let skip = self.buf.as_ptr().align_offset(Self::ALIGN);
        &mut self.buf[skip..skip + len]
    }
}

/// A device opened for writing, read and written with O_DIRECT, bypassing the page cache: what
/// the medium holds, and writes that reach it as they are made (sector by sector, in order).
pub struct Direct {
    file: File,
    sector_size: u64,
    buf: Aligned,
}

const DIRECT_CHUNK: usize = 4 << 20;

impl Direct {
    pub fn open(dev: &OpenDevice) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
            .open(&dev.path)
            .with_context(|| format!("opening {} to read it back", dev.path.display()))?;
        Ok(Direct {
            file,
            sector_size: dev.sector_size.max(512),
            buf: Aligned::new(DIRECT_CHUNK + 8192),
        })
    }

    /// Fills `out` with the bytes at `off`, reading the sectors that cover them.
    pub fn read_at(&mut self, off: u64, out: &mut [u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let ss = self.sector_size;
        let mut done = 0usize;
        while done < out.len() {
            let pos = off + done as u64;
            let start = pos / ss * ss;
            let want = (out.len() - done).min(DIRECT_CHUNK);
            let end = (pos + want as u64).div_ceil(ss) * ss;
            let len = (end - start) as usize;
            let b = self.buf.slice(len);
            self.file.read_exact_at(b, start)?;
            let skip = (pos - start) as usize;
            out[done..done + want].copy_from_slice(&b[skip..skip + want]);
            done += want;
        }
        Ok(())
    }

    /// Writes `data` at `off`, both whole sectors.
    pub fn write_at(&mut self, off: u64, data: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let ss = self.sector_size;
        if !off.is_multiple_of(ss) || !(data.len() as u64).is_multiple_of(ss) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "a direct write of {} bytes at byte {off} is not whole {ss}-byte sectors",
                    data.len()
                ),
            ));
        }
        for (i, piece) in data.chunks(DIRECT_CHUNK).enumerate() {
            let b = self.buf.slice(piece.len());
            b.copy_from_slice(piece);
            self.file.write_all_at(b, off + (i * DIRECT_CHUNK) as u64)?;
        }
        Ok(())
    }
}
