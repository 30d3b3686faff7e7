//! Writing a built disk to its target. Image files: a sparse file, written under a temporary
//! name in the same directory and renamed into place only when complete, so a failure never
//! leaves a partial image and never touches an existing file.

use crate::blockdev::sys::{pwrite_all, IOV_BATCH};
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

/// Removes `.NAME.pi-burn-PID.tmp` files and directories left by runs that no longer exist.
fn remove_stale(dir: &Path, name: &str) {
    let prefix = format!(".{name}.pi-burn-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file
            .strip_prefix(&prefix)
            // Only pi-burn's own staging (`.tmp`): a directory moved aside by a replace is
            // never removed whole (it held the user's --out).
            .and_then(|r| r.strip_suffix(".tmp"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                let _ = fs::remove_dir_all(p);
            } else {
                let _ = fs::remove_file(p);
            }
        }
    }
}

/// Says whether an entry of a directory being replaced may go (Ok), or why not.
pub type Replaceable<'a> = &'a dyn Fn(&Path) -> Result<(), String>;

/// A directory filled under a temporary name beside its destination (`.NAME.pi-burn-PID.tmp`)
/// and put in place as one; removed with everything in it when dropped uncommitted. A run
/// killed before the commit leaves it for the next run to remove.
pub struct StagedDir {
    path: PathBuf,
    committed: bool,
}

impl StagedDir {
    /// Creates `path` (a `.NAME.pi-burn-PID.tmp` name), removing dead runs' leftovers first.
    pub fn create(path: &Path) -> Result<Self> {
        let parent = path.parent().unwrap_or(Path::new("."));
        if let Some(dest) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix('.'))
            .and_then(|n| n.split(".pi-burn-").next())
        {
            remove_stale(parent, dest);
        }
        let _ = fs::remove_dir_all(path);
        fs::create_dir(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(StagedDir {
            path: path.to_path_buf(),
            committed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Puts the directory in place of `dest`: a missing or empty `dest` is replaced. A full
    /// one only when `replace` says every entry in it may go (pi-burn's own earlier output):
    /// it is moved aside first, so that at every moment one whole set is there, and then only
    /// the entries `replace` accepts are removed, one by one (never a whole tree); whatever
    /// else turned up in it meanwhile is kept, and the directory it is in is named.
    pub fn commit(mut self, dest: &Path, replace: Option<Replaceable>) -> Result<Option<PathBuf>> {
        let empty = match fs::read_dir(dest) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dest.display())),
            Ok(mut entries) => Some(entries.next().is_none()),
        };
        let old = match (empty, replace) {
            (None, _) => None,
            (Some(true), _) => {
                fs::remove_dir(dest).with_context(|| format!("replacing {}", dest.display()))?;
                None
            }
            (Some(false), None) => bail!(
                "{} is not empty (it was filled while pi-burn worked); nothing was replaced",
                dest.display()
            ),
            (Some(false), Some(ok)) => {
                // Checked again here: the caller's check was before the work.
                for e in
                    fs::read_dir(dest).with_context(|| format!("reading {}", dest.display()))?
                {
                    let p = e?.path();
                    if let Err(why) = ok(&p) {
                        bail!(crate::error::Refused(format!(
                            "{} now holds {why}; nothing was replaced",
                            dest.display()
                        )));
                    }
                }
                let name = dest
                    .file_name()
                    .context("the directory has no name")?
                    .to_string_lossy()
                    .into_owned();
                let aside = dest
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(format!(".{name}.pi-burn-kept-{}", std::process::id()));
                fs::rename(dest, &aside)
                    .with_context(|| format!("moving {} aside", dest.display()))?;
                Some((aside, ok))
            }
        };
        if let Err(e) = fs::rename(&self.path, dest) {
            if let Some((a, _)) = &old {
                let _ = fs::rename(a, dest);
            }
            return Err(e).with_context(|| format!("moving the new set into {}", dest.display()));
        }
        self.committed = true;
        let Some((aside, ok)) = old else {
            return Ok(None);
        };
        for e in fs::read_dir(&aside).into_iter().flatten().flatten() {
            let p = e.path();
            if ok(&p).is_ok() {
                let _ = fs::remove_file(&p);
            }
        }
        // Empty now, unless something not pi-burn's came in between: then it stays, named.
        Ok(fs::remove_dir(&aside).err().map(|_| aside))
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.path);
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
    // The block map beside it is replaced too: one pi-burn did not write is someone's own.
    let map = crate::disk::bmap::sidecar(path);
    check_image_path(&map)?;
    if !force && map.is_file() {
        let mut head = vec![0u8; 512];
        let n = File::open(&map)
            .and_then(|f| f.read_at(&mut head, 0))
            .unwrap_or(0);
        let ours = String::from_utf8_lossy(&head[..n]).contains(crate::disk::bmap::MARK);
        if !ours {
            bail!(
                "{} exists and pi-burn did not write it; remove it or pass --force to replace it with the new image's block map",
                map.display()
            );
        }
    }
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
    // One byte count for the run: the data written (zero extents stay holes of the file).
    let zero: Vec<bool> = img
        .blocks()
        .map(|(_, d)| d.iter().all(|b| *b == 0))
        .collect();
    let data_bytes: u64 = img
        .blocks()
        .zip(&zero)
        .filter(|(_, z)| !**z)
        .map(|((_, d), _)| d.len() as u64)
        .sum();
    progress.start("writing image", data_bytes);
    let mut written = 0u64;
    // Consecutive non-zero blocks go out in one vectored write, straight from the blocks.
    let mut run: Vec<&[u8]> = Vec::new();
    let mut run_start = 0u64;
    let mut run_end = 0u64;
    for ((off, data), &zero) in img.blocks().zip(&zero) {
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
            progress.advance(data.len() as u64);
        }
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

/// Writes `img` as a sparse image file at `image` and its block map beside it; the map's
/// hashes are computed on a second thread while the image is written. Both are complete under
/// temporary names before either replaces what is there, and the old map is removed before
/// the new image takes its place: a run killed between the renames leaves an image with no
/// map (flash writes it whole), never an image beside another image's map.
pub fn write_image_and_map(
    image: &Path,
    img: &SparseImage,
    disk: Option<&str>,
    progress: &dyn Progress,
) -> Result<(WriteStats, PathBuf)> {
    let (staged, map) = std::thread::scope(|s| {
        let map = s.spawn(|| crate::disk::bmap::Bmap {
            disk: disk.map(str::to_string),
            ..crate::disk::bmap::from_image(img)
        });
        let staged = stage_image(image, img, progress);
        (staged, map.join().expect("block map thread"))
    });
    let (staged_image, stats) = staged?;
    let path = crate::disk::bmap::sidecar(image);
    check_image_path(&path)?;
    let staged_map = stage_bytes(&path, crate::disk::bmap::to_xml(&map).as_bytes())?;
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing the old {}", path.display())),
    }
    commit(vec![staged_image, staged_map])?;
    Ok((stats, path))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let r = write_image_and_map(&image, &img, None, &crate::progress::Recorder::default());
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
        write_image_and_map(&image, &img, None, &crate::progress::Recorder::default()).unwrap();
        assert_eq!(std::fs::metadata(&image).unwrap().len(), 1 << 20);
        assert!(dir.path().join("card.img.bmap").is_file());
    }
}
