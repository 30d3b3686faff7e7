//! Writing a built disk to its target. Image files: a sparse file, written under a temporary
//! name in the same directory and renamed into place only when complete, so a failure never
//! leaves a partial image and never touches an existing file.

use crate::progress::Progress;
use crate::sparse::SparseImage;
use anyhow::{bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
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
    let mut f: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.set_len(img.size())
        .with_context(|| format!("sizing {}", tmp.display()))?;
    let extent_bytes = img.written_bytes();
    progress.start("writing image", extent_bytes);
    let mut written = 0u64;
    // Coalesce consecutive non-zero blocks into one write.
    let mut run: Vec<u8> = Vec::new();
    let mut run_start = 0u64;
    let flush_run = |f: &mut File, start: u64, run: &mut Vec<u8>| -> Result<u64> {
        if run.is_empty() {
            return Ok(0);
        }
        f.seek(SeekFrom::Start(start))?;
        f.write_all(run)
            .with_context(|| format!("writing {}", tmp.display()))?;
        let n = run.len() as u64;
        run.clear();
        Ok(n)
    };
    for (off, data) in img.blocks() {
        if data.iter().all(|b| *b == 0) {
            written += flush_run(&mut f, run_start, &mut run)?;
        } else {
            if run.is_empty() || run_start + run.len() as u64 != off || run.len() >= 8 << 20 {
                written += flush_run(&mut f, run_start, &mut run)?;
                run_start = off;
            }
            run.extend_from_slice(data);
        }
        progress.advance(data.len() as u64);
    }
    written += flush_run(&mut f, run_start, &mut run)?;
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
