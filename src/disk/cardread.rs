//! Reading a firmware card (device or image) without knowing what should be on it: its table,
//! checked as sgdisk -v does, and every file of partition 1's FAT, hashed; a few files kept whole.

use crate::disk::geometry::TableKind;
use crate::disk::table::{read_table, FoundTable, ReadOnly};
use crate::firmware::digest::Sha256Digest;
use anyhow::{bail, Context, Result};
use sha2::Digest;
use std::collections::BTreeMap;
use std::io::{Read, Seek};

/// What a card holds.
#[derive(Debug, Clone)]
pub struct CardContents {
    pub table: FoundTable,
    /// What sgdisk -v would complain about (empty under MBR, or when all is well).
    pub table_problems: Vec<String>,
    pub label: String,
    /// The FAT's volume id (serial number).
    pub volume_id: u32,
    /// Every file: path (no leading /) -> size, SHA-256.
    pub files: BTreeMap<String, (u64, Sha256Digest)>,
    /// The files asked for by name, whole (when present and no larger than asked).
    pub kept: BTreeMap<String, Vec<u8>>,
}

/// Partition 1 of `disk`: the table, sgdisk -v's complaints, and the partition's byte range,
/// its FAT chains checked (a loop or a cross-link is an error, not an endless walk).
fn partition_one<R: Read + Seek>(
    disk: &mut R,
    size: u64,
    origin: &str,
) -> Result<(FoundTable, Vec<String>, u64, u64)> {
    let table =
        read_table(disk, size, None).with_context(|| format!("{origin}: partition table"))?;
    let table_problems = if table.table == TableKind::Gpt {
        crate::disk::gptcheck::check(disk, size, table.sector_size)
    } else {
        vec![]
    };
    let Some(p) = table.partitions.iter().find(|p| p.number == 1) else {
        bail!("{origin} has no partition 1");
    };
    let start = p
        .first_lba
        .checked_mul(table.sector_size)
        .context("partition 1 starts beyond any disk")?;
    let end = p
        .last_lba
        .checked_add(1)
        .and_then(|e| e.checked_mul(table.sector_size))
        .filter(|e| *e <= size && *e > start)
        .with_context(|| format!("{origin}: partition 1 runs past the end of the disk"))?;
    let chains = crate::disk::fatcheck::check(disk, start, end - start);
    if !chains.is_empty() {
        // What is on the card, found: the card is not intact (exit 3), not a failure to read.
        bail!(crate::error::Found(format!(
            "{origin}: partition 1: {}",
            chains.join("; ")
        )));
    }
    Ok((table, table_problems, start, end))
}
/// A file read by [`read_one`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneFile {
    Missing,
    /// Larger than the limit asked for (not read further).
    TooLarge,
    File(Vec<u8>),
}

/// One root-directory file of partition 1's FAT, read up to `max` bytes.
pub fn read_one<R: Read + Seek>(
    disk: &mut R,
    size: u64,
    name: &str,
    max: u64,
    origin: &str,
) -> Result<OneFile> {
    let (_, _, start, end) = partition_one(disk, size, origin)?;
    let slice = fscommon::StreamSlice::new(ReadOnly(&mut *disk), start, end)?;
    let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new().update_accessed_date(false))
        .map_err(|e| {
            crate::error::Found(format!(
                "{origin}: partition 1 holds no readable FAT filesystem ({e})"
            ))
        })?;
    let Ok(f) = fs.root_dir().open_file(name) else {
        return Ok(OneFile::Missing);
    };
    let mut out = vec![];
    f.take(max + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("{origin}: reading /{name}"))?;
    if out.len() as u64 > max {
        return Ok(OneFile::TooLarge);
    }
    Ok(OneFile::File(out))
}

/// Reads `disk` of `size` bytes; `keep` names files to keep whole, each with a size limit.
pub fn read_card<R: Read + Seek>(
    disk: &mut R,
    size: u64,
    keep: &[(&str, u64)],
    origin: &str,
) -> Result<CardContents> {
    let (table, table_problems, start, end) = partition_one(disk, size, origin)?;
    let slice = fscommon::StreamSlice::new(ReadOnly(&mut *disk), start, end)?;
    let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new().update_accessed_date(false))
        .map_err(|e| {
            crate::error::Found(format!(
                "{origin}: partition 1 holds no readable FAT filesystem ({e})"
            ))
        })?;
    let label = fs.volume_label();
    let volume_id = fs.volume_id();
    let mut files = BTreeMap::new();
    let mut kept = BTreeMap::new();
    let mut buf = vec![0u8; 1 << 16];
    walk(&fs, origin, |path, entry| {
        if entry.is_dir() {
            return Ok(true);
        }
        let limit = keep.iter().find(|(k, _)| *k == path).map(|(_, l)| *l);
        let mut whole = Vec::new();
        let mut h = sha2::Sha256::new();
        let mut n = 0u64;
        let mut f = entry.to_file();
        loop {
            let got = f
                .read(&mut buf)
                .with_context(|| format!("{origin}: reading /{path}"))?;
            if got == 0 {
                break;
            }
            h.update(&buf[..got]);
            n += got as u64;
            if limit.is_some_and(|l| n <= l) {
                whole.extend_from_slice(&buf[..got]);
            }
        }
        if limit.is_some_and(|l| n <= l) {
            kept.insert(path.to_string(), whole);
        }
        // Two entries of one name: which one the boot loader reads is not ours to guess.
        if files
            .insert(path.to_string(), (n, Sha256Digest::from_hasher(h)))
            .is_some()
        {
            bail!("{origin}: partition 1 has two entries named /{path}");
        }
        Ok(false)
    })?;
    Ok(CardContents {
        table,
        table_problems,
        label,
        volume_id,
        files,
        kept,
    })
}

/// Visits every entry of a FAT below its root, depth first, with its path (no leading `/`);
/// `.`, `..` and the volume label are left out. `visit` says whether to descend into a
/// directory. Each directory is opened from its entry (not by path from the root), so the walk
/// is linear in the entries however wide or deep the tree.
pub fn walk<T: fatfs::ReadWriteSeek>(
    fs: &fatfs::FileSystem<T>,
    origin: &str,
    mut visit: impl FnMut(&str, fatfs::DirEntry<'_, T>) -> Result<bool>,
) -> Result<()> {
    let mut todo = vec![(String::new(), fs.root_dir())];
    while let Some((dir, d)) = todo.pop() {
        for entry in d.iter() {
            let entry = entry.with_context(|| format!("{origin}: reading directory '/{dir}'"))?;
            let name = entry.file_name();
            if name == "."
                || name == ".."
                || entry
                    .attributes()
                    .contains(fatfs::FileAttributes::VOLUME_ID)
            {
                continue;
            }
            let path = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            let sub = entry.is_dir().then(|| entry.to_dir());
            if visit(&path, entry)? {
                if let Some(sub) = sub {
                    todo.push((path, sub));
                }
            }
        }
    }
    Ok(())
}
