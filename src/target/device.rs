//! Writing to a block device: opened exclusively, its identity checked again right before the
//! first write, then the ordered write (wipe the table areas, data, flush, table last, flush),
//! the partition table reread, and the written ranges read back bypassing the page cache.

use super::ioctl;
use super::sysfs::{self, DiskInfo, SysTree};
use super::Resolved;
use crate::progress::Progress;
use crate::sparse::{Extent, SparseImage};
use crate::writer::{pwrite_all, IOV_BATCH};
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
                anyhow::anyhow!(
                    "{} is busy: something holds it (a mount, RAID, LVM, LUKS or another program)",
                    path.display()
                )
            } else {
                anyhow::Error::new(e).context(format!("opening {} for writing", path.display()))
            }
        })?;
    let rdev = ioctl::rdev_of(&file)?;
    let dev = (ioctl::major(rdev), ioctl::minor(rdev));
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
    let size = ioctl::size_bytes(&file)
        .with_context(|| format!("reading the size of {}", path.display()))?;
    let sector_size = ioctl::logical_sector_size(&file)
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

fn in_areas(off: u64, areas: &[Extent]) -> bool {
    areas.iter().any(|a| off >= a.offset && off < a.end())
}

fn fdatasync(f: &File) -> std::io::Result<()> {
    f.sync_data()
}

/// Writes zeros over `areas`.
fn wipe(f: &File, areas: &[Extent]) -> std::io::Result<u64> {
    let zeros = vec![0u8; 1 << 20];
    let mut n = 0;
    for a in areas {
        let mut off = a.offset;
        while off < a.end() {
            let len = (a.end() - off).min(zeros.len() as u64) as usize;
            n += pwrite_all(f, off, &[&zeros[..len]])?;
            off += len as u64;
        }
    }
    Ok(n)
}

/// Writes runs of consecutive blocks chosen by `pick`.
fn write_blocks(
    f: &File,
    img: &SparseImage,
    pick: impl Fn(u64, &[u8]) -> bool,
    progress: &dyn Progress,
) -> std::io::Result<u64> {
    let mut written = 0;
    let mut run: Vec<&[u8]> = vec![];
    let (mut start, mut end) = (0u64, 0u64);
    for (off, data) in img.blocks() {
        if !pick(off, data) {
            continue;
        }
        // Up to 4 MiB per write, in one vectored call.
        if !run.is_empty() && (off != end || run.len() >= IOV_BATCH) {
            written += pwrite_all(f, start, &run)?;
            progress.advance(end - start);
            run.clear();
        }
        if run.is_empty() {
            start = off;
        }
        run.push(data);
        end = off + data.len() as u64;
    }
    if !run.is_empty() {
        written += pwrite_all(f, start, &run)?;
        progress.advance(end - start);
    }
    Ok(written)
}

/// The table areas of a disk: its first MiB and its last MiB (MBR, both GPTs).
pub fn table_areas(size: u64) -> Vec<Extent> {
    let mib = 1u64 << 20;
    if size <= 2 * mib {
        return vec![Extent {
            offset: 0,
            len: size,
        }];
    }
    vec![
        Extent {
            offset: 0,
            len: mib,
        },
        Extent {
            offset: size - mib,
            len: mib,
        },
    ]
}

/// The ordered write. On failure after the first wipe, the table areas are wiped again so the
/// disk cannot look like a finished card.
pub fn write_ordered(dev: &OpenDevice, img: &SparseImage, progress: &dyn Progress) -> Result<u64> {
    if img.size() != dev.size {
        bail!(
            "internal: the plan is for {} bytes, {} has {}",
            img.size(),
            dev.path.display(),
            dev.size
        );
    }
    let areas = table_areas(dev.size);
    let f = &dev.file;
    let name = dev.path.display().to_string();
    let wiped =
        wipe(f, &areas).with_context(|| format!("wiping the partition table areas of {name}"))?;
    let total: u64 = img
        .blocks()
        .filter(|(o, _)| !in_areas(*o, &areas))
        .map(|(_, d)| d.len() as u64)
        .sum();
    progress.start("writing", total);
    let result = (|| -> Result<u64> {
        let mut n = write_blocks(f, img, |o, _| !in_areas(o, &areas), progress)
            .with_context(|| format!("writing {name}"))?;
        fdatasync(f).with_context(|| format!("flushing {name}"))?;
        progress.finish();
        // The partition table last: only a complete card gets one.
        n += write_blocks(
            f,
            img,
            |o, d| in_areas(o, &areas) && d.iter().any(|b| *b != 0),
            progress,
        )
        .with_context(|| format!("writing the partition table of {name}"))?;
        fdatasync(f).with_context(|| format!("flushing {name}"))?;
        Ok(n)
    })();
    match result {
        Ok(n) => Ok(wiped + n),
        Err(e) => {
            progress.finish();
            let _ = wipe(f, &areas).and_then(|_| fdatasync(f));
            Err(e.context(format!(
                "{name} was left without a partition table; burn it again"
            )))
        }
    }
}

/// Asks the kernel to reread the table, retrying while busy; then lets udev settle.
pub fn reread(dev: &OpenDevice, progress: &dyn Progress) {
    for attempt in 0..6 {
        match ioctl::reread_partitions(&dev.file) {
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

/// A buffer aligned for O_DIRECT.
pub(crate) struct Aligned {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl Aligned {
    pub(crate) fn new(len: usize) -> Self {
        let layout = std::alloc::Layout::from_size_align(len, 4096).expect("valid layout");
        // SAFETY: the layout has a non-zero size; a null result is handled.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Aligned { ptr, layout }
    }
    pub(crate) fn slice(&mut self, len: usize) -> &mut [u8] {
        assert!(len <= self.layout.size());
        // SAFETY: ptr is valid for layout.size() bytes, initialised (zeroed), uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, len) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in `new`.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// Reads every written range back with O_DIRECT and compares it with the plan. Returns the
/// ranges that differ and the bytes read.
pub fn read_back(
    dev: &OpenDevice,
    img: &SparseImage,
    progress: &dyn Progress,
) -> Result<(Vec<String>, u64)> {
    use std::os::unix::fs::FileExt;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
        .open(&dev.path)
        .with_context(|| format!("opening {} to read it back", dev.path.display()))?;
    const CHUNK: usize = 4 << 20;
    let mut buf = Aligned::new(CHUNK);
    let mut want = vec![0u8; CHUNK];
    let mut bad = vec![];
    let mut read = 0u64;
    let extents = img.extents();
    progress.start("reading back", extents.iter().map(|e| e.len).sum());
    for e in extents {
        let mut off = e.offset;
        while off < e.end() {
            let len = (e.end() - off).min(CHUNK as u64) as usize;
            let got = buf.slice(len);
            f.read_exact_at(got, off)
                .with_context(|| format!("reading {} back at byte {off}", dev.path.display()))?;
            img.read_at(off, &mut want[..len]);
            if got[..] != want[..len] {
                let first = got
                    .iter()
                    .zip(&want[..len])
                    .position(|(a, b)| a != b)
                    .unwrap_or(0) as u64;
                bad.push(format!(
                    "bytes from {} differ from what was written (range {}-{})",
                    off + first,
                    off,
                    off + len as u64
                ));
            }
            read += len as u64;
            progress.advance(len as u64);
            off += len as u64;
        }
    }
    progress.finish();
    Ok((bad, read))
}

/// A block device as a flash target: buffered writes through the exclusive descriptor, reads
/// back through a second, O_DIRECT one.
pub struct DeviceSink {
    dev: OpenDevice,
    direct: File,
    buf: Aligned,
}

const DIRECT_CHUNK: usize = 4 << 20;

impl DeviceSink {
    pub fn new(dev: OpenDevice) -> Result<Self> {
        let direct = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
            .open(&dev.path)
            .with_context(|| format!("opening {} to read it back", dev.path.display()))?;
        Ok(DeviceSink {
            dev,
            direct,
            buf: Aligned::new(DIRECT_CHUNK + 8192),
        })
    }
}

impl crate::flash::Sink for DeviceSink {
    fn name(&self) -> String {
        self.dev.path.display().to_string()
    }
    fn size(&self) -> u64 {
        self.dev.size
    }
    fn sector_size(&self) -> u64 {
        self.dev.sector_size
    }
    fn write_at(&mut self, off: u64, data: &[u8]) -> std::io::Result<()> {
        pwrite_all(&self.dev.file, off, &[data]).map(|_| ())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        fdatasync(&self.dev.file)
    }
    fn read_back(&mut self, off: u64, out: &mut [u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        // O_DIRECT wants sector-aligned offsets and lengths: read the covering sectors.
        let ss = self.dev.sector_size.max(512);
        let mut done = 0usize;
        while done < out.len() {
            let pos = off + done as u64;
            let start = pos / ss * ss;
            let want = (out.len() - done).min(DIRECT_CHUNK);
            let end = (pos + want as u64).div_ceil(ss) * ss;
            let len = (end - start) as usize;
            let b = self.buf.slice(len);
            self.direct.read_exact_at(b, start)?;
            let skip = (pos - start) as usize;
            out[done..done + want].copy_from_slice(&b[skip..skip + want]);
            done += want;
        }
        Ok(())
    }
    fn reread(&mut self) {
        reread(&self.dev, &crate::progress::Silent { notices: true });
    }
}

// SAFETY: the raw pointer in Aligned is owned by this sink alone and only used through &mut self.
unsafe impl Send for DeviceSink {}
