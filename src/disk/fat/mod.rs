//! FAT32 from a file set into a byte range of a disk: fatfs formats the volume (boot sector,
//! FSInfo, empty FATs), then pi-burn writes the tree itself (tree.rs: clusters in order, chains,
//! directories with long and unique short names, `.`/`..` as fsck.fat expects, the label first
//! in the root), linear in the number of entries. The corrections to fatfs 0.3.6's format
//! (fixups.rs): the data area aligned to a cluster, the FSInfo free count and next-free hint,
//! hidden sectors equal to the partition's start. `fsck.fat -n -v` finds nothing to report.

use crate::disk::sparse::SparseImage;
use crate::firmware::fileset::{FileSet, Node};
use anyhow::{bail, Context, Result};
pub mod bpb;
mod fixups;
mod time;
mod tree;

pub use fixups::RawFat;
pub use time::Timestamp;

/// The label a FAT without one reads as (mkfs.fat's default without `-n`).
pub const NO_LABEL: &str = "NO NAME";

/// What to build.
#[derive(Debug, Clone)]
pub struct FatSpec {
    /// Up to 11 characters of printable ASCII, stored upper-case; `None` is mkfs.fat's default
    /// without `-n` (`NO NAME` in the boot sector, no label entry).
    pub label: Option<String>,
    pub volume_id: u32,
    pub timestamp: Timestamp,
    pub sector_size: u64,
    /// The partition's first sector on the disk (BPB hidden sectors).
    pub hidden_sectors: u64,
}

/// What was built.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FatInfo {
    #[serde(rename = "type")]
    pub fat_type: &'static str,
    pub label: String,
    pub volume_id: String,
    pub bytes_per_sector: u64,
    pub cluster_size: u64,
    pub clusters: u32,
    pub free_clusters: u32,
}

/// FAT32's smallest legal cluster count, plus a margin for rounding in the FAT size.
const MIN_FAT32_CLUSTERS: u64 = 65525 + 16;

/// The label as the 11 bytes FAT stores.
pub fn label_bytes(label: &str) -> Result<[u8; 11]> {
    if label.is_empty() || label.len() > 11 {
        bail!("volume label '{label}' must be 1 to 11 characters");
    }
    if let Some(c) = label
        .chars()
        .find(|c| !c.is_ascii_graphic() && *c != ' ' || "\"*+,./:;<=>?[\\]|".contains(*c))
    {
        bail!("volume label '{label}' contains {c:?}, which FAT labels cannot hold");
    }
    let mut b = [b' '; 11];
    for (i, c) in label.bytes().enumerate() {
        b[i] = c.to_ascii_uppercase();
    }
    Ok(b)
}

/// The cluster size for a FAT32 volume of `bytes`: mkfs.fat's choice (4 KiB up to 8 GiB, then
/// larger), made smaller when that would leave too few clusters, never below a sector.
pub fn cluster_size_for(bytes: u64, sector_size: u64) -> Result<u64> {
    const GIB: u64 = 1 << 30;
    let mut c: u64 = match bytes {
        b if b <= 8 * GIB => 4096,
        b if b <= 16 * GIB => 8192,
        b if b <= 32 * GIB => 16384,
        _ => 32768,
    };
    c = c.max(sector_size);
    loop {
        let approx = bytes.saturating_sub(32 * sector_size) / (c + 8);
        if approx >= MIN_FAT32_CLUSTERS {
            return Ok(c);
        }
        if c / 2 < sector_size {
            let need =
                (MIN_FAT32_CLUSTERS * (sector_size + 8) + 32 * sector_size).div_ceil(1 << 20);
            bail!(
                "a partition of {} cannot hold FAT32 with {sector_size}-byte sectors: it needs at least {need} MiB",
                crate::util::units::human(bytes)
            );
        }
        c /= 2;
    }
}

/// Formats `[offset, offset + len)` of `disk` as FAT32 holding `files`.
pub fn build_fat32(
    disk: &mut SparseImage,
    offset: u64,
    len: u64,
    files: &FileSet,
    spec: &FatSpec,
) -> Result<FatInfo> {
    let label = match &spec.label {
        Some(l) => label_bytes(l)?,
        None => *b"NO NAME    ",
    };
    let cluster = cluster_size_for(len, spec.sector_size)?;
    let needed = estimate_bytes(files, cluster);
    if needed > len {
        bail!(
            "the firmware needs about {} on FAT32 but the partition holds {}; give a larger --partition-size",
            crate::util::units::human(needed),
            crate::util::units::human(len)
        );
    }
    {
        let slice = fscommon::StreamSlice::new(&mut *disk, offset, offset + len)?;
        let opts = fatfs::FormatVolumeOptions::new()
            .fat_type(fatfs::FatType::Fat32)
            .bytes_per_sector(spec.sector_size as u16)
            .bytes_per_cluster(cluster as u32)
            .volume_id(spec.volume_id)
            .volume_label(label);
        fatfs::format_volume(slice, opts).context("formatting FAT32")?;
    }
    align_data_area(disk, offset)?;
    // The files, written straight into the formatted volume (linear in the number of entries).
    let mut vol = RawFat::open(disk, offset)?;
    tree::write_tree(
        disk,
        &vol,
        files,
        spec.label.as_ref().map(|_| &label),
        spec.timestamp,
    )?;
    let free = vol.fix_fsinfo(disk)?;
    vol.set_hidden_sectors(disk, spec.hidden_sectors)?;
    Ok(FatInfo {
        fat_type: "FAT32",
        label: spec
            .label
            .as_deref()
            .unwrap_or("NO NAME")
            .to_ascii_uppercase(),
        volume_id: format!(
            "{:04X}-{:04X}",
            spec.volume_id >> 16,
            spec.volume_id & 0xffff
        ),
        bytes_per_sector: spec.sector_size,
        cluster_size: cluster,
        clusters: vol.clusters,
        free_clusters: free,
    })
}

/// Moves the FATs down (more reserved sectors, as mkfs.fat does) until the data area starts
/// on a cluster boundary, so every cluster is aligned on the card (flash pages, 4 KiB blocks).
/// Runs right after formatting, when the FATs and the root directory are still empty.
fn align_data_area(disk: &mut SparseImage, offset: u64) -> Result<()> {
    let mut bs = vec![0u8; 512];
    disk.read_at(offset, &mut bs);
    let b = bpb::Bpb::parse(&bs, disk.size().saturating_sub(offset))
        .map_err(|e| anyhow::anyhow!("the FAT32 volume fatfs formatted: {e}"))?;
    let (ss, spc, reserved, nfats) = (
        b.bytes_per_sector,
        b.sectors_per_cluster,
        b.reserved_sectors,
        b.nfats,
    );
    let (total, fat_sectors) = (b.total_sectors, b.fat_sectors);
    let mut new_reserved = reserved.max(32);
    while !(new_reserved + nfats * fat_sectors).is_multiple_of(spc) {
        new_reserved += 1;
    }
    if new_reserved == reserved {
        return Ok(());
    }
    let fat_bytes = (nfats * fat_sectors * ss) as usize;
    let cluster = spc * ss;
    // The FATs as fatfs initialised them, and the root directory's (zeroed) first cluster.
    let mut fats = vec![0u8; fat_bytes];
    disk.read_at(offset + reserved * ss, &mut fats);
    let old_data = offset + (reserved + nfats * fat_sectors) * ss;
    let new_data = offset + (new_reserved + nfats * fat_sectors) * ss;
    disk.zero_range(
        offset + reserved * ss,
        new_data + cluster - offset - reserved * ss,
    )?;
    disk.write_at(offset + new_reserved * ss, &fats)?;
    debug_assert!(old_data < new_data);
    let clusters = (total - new_reserved - nfats * fat_sectors) / spc;
    if clusters < 65525 {
        bail!("aligning the FAT32 data area leaves too few clusters ({clusters})");
    }
    let r = u16::try_from(new_reserved).context("reserved sectors")?;
    disk.write_at(offset + 14, &r.to_le_bytes())?;
    let backup = b.backup_boot_sector;
    disk.write_at(offset + backup * ss + 14, &r.to_le_bytes())?;
    Ok(())
}

/// Space the files take in clusters, with one cluster per directory and a margin for the
/// long-name entries.
fn estimate_bytes(files: &FileSet, cluster: u64) -> u64 {
    let data: u64 = files
        .iter()
        .map(|(_, n)| match n {
            Node::Dir => cluster,
            Node::File { data, .. } => (data.len() as u64).div_ceil(cluster) * cluster,
        })
        .sum();
    // Reserved sectors, two FATs of 4 bytes a cluster, the root directory.
    let clusters = data / cluster + 1;
    data + cluster + 2 * clusters * 4 + 64 * 1024
}

#[cfg(test)]
mod tests;
