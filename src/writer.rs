//! Writing a built disk to its target. Image files: a sparse file, written under a temporary
//! name in the same directory and renamed into place only when complete, so a failure never
//! leaves a partial image and never touches an existing file.

use crate::progress::Progress;
use crate::sparse::SparseImage;
use anyhow::{bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WriteStats {
    /// Bytes the target must hold as planned (every extent, zeros included).
    pub extent_bytes: u64,
    /// Bytes actually written.
    pub bytes_written: u64,
}

/// Removes a temporary file unless defused.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Refuses an output path that is not a new or regular file.
pub fn check_image_path(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(()),
        Ok(m) if m.file_type().is_symlink() => {
            bail!("{} is a symbolic link; give the image's real path", path.display())
        }
        Ok(_) => bail!(
            "{} exists and is not a regular file; --image writes image files only (give a block device as the positional DEVICE argument)",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !parent.is_dir() {
                bail!("cannot create {}: {} is not a directory", path.display(), parent.display());
            }
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("checking {}", path.display())),
    }
}

/// Writes `img` as a sparse image file at `path`. Blocks of zeros are left as holes: the file
/// is new, so they already read as zero.
pub fn write_image_file(
    path: &Path,
    img: &SparseImage,
    progress: &dyn Progress,
) -> Result<WriteStats> {
    check_image_path(path)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .context("the image path has no file name")?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.pi-burn-{}.tmp", std::process::id()));
    let mut guard = TempGuard(Some(tmp.clone()));
    let f: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.set_len(img.size())
        .with_context(|| format!("sizing {}", tmp.display()))?;
    let extent_bytes = img.written_bytes();
    progress.start("writing image", extent_bytes);
    let mut written = 0u64;
    // Consecutive non-zero blocks go out in one vectored write, straight from the blocks.
    let mut run: Vec<&[u8]> = Vec::new();
    let mut run_start = 0u64;
    let mut run_end = 0u64;
    for (off, data) in img.blocks() {
        let zero = data.iter().all(|b| *b == 0);
        if !run.is_empty() && (zero || off != run_end || run.len() >= IOV_BATCH) {
            written += pwrite_all(&f, run_start, &run)
                .with_context(|| format!("writing {}", tmp.display()))?;
            run.clear();
        }
        if !zero {
            if run.is_empty() {
                run_start = off;
            }
            run.push(data);
            run_end = off + data.len() as u64;
        }
        progress.advance(data.len() as u64);
    }
    if !run.is_empty() {
        written += pwrite_all(&f, run_start, &run)
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    f.sync_all()
        .with_context(|| format!("flushing {}", tmp.display()))?;
    drop(f);
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    guard.0 = None;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    progress.finish();
    Ok(WriteStats {
        extent_bytes,
        bytes_written: written,
    })
}

/// Slices per vectored write (Linux's IOV_MAX is 1024).
pub const IOV_BATCH: usize = 1024;

/// Writes `bufs` back to back at `offset` of `f`, resuming after short writes. Returns the
/// bytes written.
pub fn pwrite_all(f: &File, offset: u64, bufs: &[&[u8]]) -> std::io::Result<u64> {
    use std::os::fd::AsRawFd;
    let total: u64 = bufs.iter().map(|b| b.len() as u64).sum();
    let mut done = 0u64;
    let mut first = 0usize;
    let mut skip = 0usize;
    while first < bufs.len() && bufs[first].is_empty() {
        first += 1;
    }
    while first < bufs.len() {
        let iov: Vec<libc::iovec> = bufs[first..]
            .iter()
            .take(IOV_BATCH)
            .enumerate()
            .map(|(i, b)| {
                let b = if i == 0 { &b[skip..] } else { b };
                libc::iovec {
                    iov_base: b.as_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                }
            })
            .collect();
        // SAFETY: every iovec points into a live slice of `bufs` for the duration of the call,
        // and the kernel only reads from them.
        let n = unsafe {
            libc::pwritev(
                f.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                (offset + done) as libc::off_t,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "the target accepted no more bytes",
            ));
        }
        let mut n = n as usize;
        done += n as u64;
        // Step past what was written, and past empty slices.
        while first < bufs.len() {
            let left = bufs[first].len() - skip;
            if n >= left {
                n -= left;
                first += 1;
                skip = 0;
            } else {
                skip += n;
                break;
            }
        }
    }
    debug_assert_eq!(done, total);
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pwrite_all_writes_every_slice_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        let a = vec![1u8; 5000];
        let b = [2u8; 3];
        let c: Vec<u8> = vec![];
        let d = vec![3u8; 70000];
        let slices: Vec<&[u8]> = (0..1500)
            .map(|i| if i % 2 == 0 { &b[..] } else { &c[..] })
            .chain([&a[..], &d[..]])
            .collect();
        let n = pwrite_all(&f, 10, &slices).unwrap();
        assert_eq!(n, 750 * 3 + 5000 + 70000);
        let back = std::fs::read(&p).unwrap();
        assert_eq!(back.len() as u64, 10 + n);
        assert!(back[..10].iter().all(|x| *x == 0));
        assert!(back[10..10 + 2250].iter().all(|x| *x == 2));
        assert!(back[10 + 2250..10 + 2250 + 5000].iter().all(|x| *x == 1));
        assert!(back[10 + 7250..].iter().all(|x| *x == 3));
    }
}
