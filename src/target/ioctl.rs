//! The block-device ioctls pi-burn needs, behind safe wrappers. Every `unsafe` is here.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

// From <linux/fs.h>; the same numbers on x86_64 and aarch64.
const BLKRRPART: libc::c_ulong = 0x125F; // _IO(0x12, 95)
const BLKSSZGET: libc::c_ulong = 0x1268; // _IO(0x12, 104)
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272; // _IOR(0x12, 114, u64)

/// The device's size in bytes.
pub fn size_bytes(f: &File) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points at `size`.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKGETSIZE64 as _, &mut size as *mut u64) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

/// The logical sector size the kernel uses for the device.
pub fn logical_sector_size(f: &File) -> io::Result<u64> {
    let mut ss: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which points at `ss`.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKSSZGET as _, &mut ss as *mut libc::c_int) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ss as u64)
}

/// Asks the kernel to read the partition table again.
pub fn reread_partitions(f: &File) -> io::Result<()> {
    // SAFETY: BLKRRPART takes no argument.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKRRPART as _, 0) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Device number (`st_rdev`) of an open block device, or of a path.
pub fn rdev_of(f: &File) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(f.metadata()?.rdev())
}

pub fn major(dev: u64) -> u64 {
    libc::major(dev) as u64
}

pub fn minor(dev: u64) -> u64 {
    libc::minor(dev) as u64
}
