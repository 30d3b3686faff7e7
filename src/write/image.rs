//! Writing a built disk to its target. Image files: a sparse file, written under a temporary
//! name in the same directory and renamed into place only when complete, so a failure never
//! leaves a partial image and never touches an existing file.

use crate::disk::sparse::SparseImage;
use crate::progress::Progress;
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

/// A file written completely under a temporary name beside its destination, waiting to be
/// renamed into place; removed when dropped uncommitted.
pub struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
    guard: TempGuard,
}

/// Temporary files are `.NAME.pi-burn-PID.tmp`: a later run removes those whose process is
/// gone (a killed run cannot clean up after itself).
fn temp_path(dest: &Path) -> Result<(PathBuf, PathBuf, String)> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = dest
        .file_name()
        .context("the image path has no file name")?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{name}.pi-burn-{}.tmp", std::process::id()));
    Ok((dir, tmp, name))
}

/// Removes `.NAME.pi-burn-PID.tmp` files left by runs that no longer exist.
fn remove_stale(dir: &Path, name: &str) {
    let prefix = format!(".{name}.pi-burn-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".tmp"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(e.path());
        }
    }
}

fn create_temp(dest: &Path) -> Result<(File, Staged)> {
    let (dir, tmp, name) = temp_path(dest)?;
    remove_stale(&dir, &name);
    let _ = fs::remove_file(&tmp);
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    Ok((
        f,
        Staged {
            guard: TempGuard(Some(tmp.clone())),
            tmp,
            dest: dest.to_path_buf(),
        },
    ))
}

/// Renames staged files into place, in order, once every one of them is complete.
pub fn commit(staged: Vec<Staged>) -> Result<()> {
    for mut s in staged {
        fs::rename(&s.tmp, &s.dest)
            .with_context(|| format!("renaming {} to {}", s.tmp.display(), s.dest.display()))?;
        s.guard.0 = None;
        if let Some(d) = s.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(d) = File::open(d) {
                let _ = d.sync_all();
            }
        }
    }
    Ok(())
}

/// Refuses to replace an existing file that does not look like a disk image (no MBR boot
/// signature, no GPT header): `--image notes.txt` must not eat the notes. `force` overrides.
pub fn check_replaceable(path: &Path, force: bool) -> Result<()> {
    use std::os::unix::fs::FileExt;
    check_image_path(path)?;
    let Ok(f) = File::open(path) else {
        return Ok(());
    };
    if force {
        return Ok(());
    }
    let mut head = vec![0u8; 4096 + 8];
    let n = f.read_at(&mut head, 0).unwrap_or(0);
    let head = &head[..n];
    let mbr = head.len() >= 512 && head[510..512] == [0x55, 0xAA];
    let gpt = |at: usize| head.len() >= at + 8 && &head[at..at + 8] == b"EFI PART";
    if n == 0 || mbr || gpt(512) || gpt(4096) {
        return Ok(());
    }
    bail!(
        "{} exists and holds no partition table: it does not look like a disk image; remove it or pass --force to replace it",
        path.display()
    )
}

/// Writes `bytes` completely under a temporary name beside `dest`.
pub fn stage_bytes(dest: &Path, bytes: &[u8]) -> Result<Staged> {
    use std::io::Write;
    let (mut f, staged) = create_temp(dest)?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", staged.tmp.display()))?;
    Ok(staged)
}

/// Writes `img` as a sparse file under a temporary name beside `path`.
pub fn stage_image(
    path: &Path,
    img: &SparseImage,
    progress: &dyn Progress,
) -> Result<(Staged, WriteStats)> {
    check_image_path(path)?;
    let (f, staged) = create_temp(path)?;
    let tmp = staged.tmp.clone();
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
    progress.finish();
    Ok((
        staged,
        WriteStats {
            extent_bytes,
            bytes_written: written,
        },
    ))
}

/// Slices per vectored write (Linux's IOV_MAX is 1024).
pub const IOV_BATCH: usize = 1024;

/// Writes `bufs` back to back at `offset` of `f`, resuming after short writes. Returns the
/// bytes written.
pub fn pwrite_all(f: &File, offset: u64, bufs: &[&[u8]]) -> std::io::Result<u64> {
    let total: u64 = bufs.iter().map(|b| b.len() as u64).sum();
    let mut done = 0u64;
    let mut first = 0usize;
    let mut skip = 0usize;
    while first < bufs.len() && bufs[first].is_empty() {
        first += 1;
    }
    while first < bufs.len() {
        let batch: Vec<&[u8]> = bufs[first..]
            .iter()
            .take(IOV_BATCH)
            .enumerate()
            .map(|(i, b)| if i == 0 { &b[skip..] } else { *b })
            .collect();
        let n = match crate::blockdev::sys::pwritev(f, &batch, offset + done) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
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

    #[test]
    fn an_image_is_replaced_only_with_its_block_map_and_stale_temps_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("card.img");
        std::fs::write(&image, b"the old image").unwrap();
        // A temp file of a run that was killed (no such process) and one of a live one.
        let stale = dir.path().join(".card.img.pi-burn-4294967.tmp");
        std::fs::write(&stale, b"x").unwrap();
        let live = dir.path().join(format!(".card.img.pi-burn-{}.tmp", 1));
        std::fs::write(&live, b"x").unwrap();
        // The block map cannot be written (its path is a directory): the image stays as it was.
        std::fs::create_dir(dir.path().join("card.img.bmap")).unwrap();
        let mut img = SparseImage::new(1 << 20);
        img.write_at(0, &[7u8; 4096]).unwrap();
        let r = crate::disk::bmap::write_image_and_map(
            &image,
            &img,
            &crate::progress::Recorder::default(),
        );
        assert!(r.is_err());
        assert_eq!(std::fs::read(&image).unwrap(), b"the old image");
        assert!(!stale.exists(), "a dead run's temp file is removed");
        assert!(live.exists(), "a live process's temp file is left alone");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(&format!("pi-burn-{}.tmp", std::process::id())))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        std::fs::remove_dir(dir.path().join("card.img.bmap")).unwrap();
        crate::disk::bmap::write_image_and_map(&image, &img, &crate::progress::Recorder::default())
            .unwrap();
        assert_eq!(std::fs::metadata(&image).unwrap().len(), 1 << 20);
        assert!(dir.path().join("card.img.bmap").is_file());
    }
}
