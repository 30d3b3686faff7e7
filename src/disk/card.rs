//! The SD card, built in memory: the firmware partition's FAT32, then the partition table; and
//! what an SSD's build shares with it (the wipe of each partition's ends, formatted FATs).

use crate::disk::fat::{build_fat32, FatInfo, FatSpec, Timestamp};
use crate::disk::geometry::DiskPlan;
use crate::disk::sparse::SparseImage;
use crate::disk::table::write_table;
use crate::firmware::fileset::FileSet;
use crate::util::ids::derive_u32;
use anyhow::Result;

/// A card ready to be written: every extent it needs, and what its filesystem is.
pub struct BuiltCard {
    pub disk: SparseImage,
    pub fat: FatInfo,
}

/// Builds `plan` with `files` in partition 1 as FAT32 labelled `label`.
pub fn build_sdcard(
    plan: &DiskPlan,
    files: &FileSet,
    label: &str,
    seed: &str,
    timestamp: Timestamp,
) -> Result<BuiltCard> {
    let part = &plan.partitions[0];
    let mut disk = SparseImage::new(plan.size);
    let spec = FatSpec {
        label: Some(label.to_string()),
        volume_id: derive_u32(seed, "fat-volume-id"),
        timestamp,
        sector_size: plan.sector_size,
        hidden_sectors: part.first_lba,
    };
    let fat = build_fat32(
        &mut disk,
        part.first_lba * plan.sector_size,
        part.sectors() * plan.sector_size,
        files,
        &spec,
    )?;
    write_table(plan, &mut disk)?;
    Ok(BuiltCard { disk, fat })
}

/// Bytes wiped at each end of every new partition of an SSD: ZFS keeps two labels in the first
/// and two in the last 512 KiB, LUKS2 its second header up to 4 MiB in, md and others sit at
/// the end. 8 MiB covers them all.
pub const PARTITION_WIPE: u64 = 8 << 20;

/// What was formatted on an SSD.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Formatted {
    pub partition: u32,
    pub label: String,
    #[serde(flatten)]
    pub fat: FatInfo,
}

/// mkfs.fat (disko's mkfs.vfat without extraArgs) makes FAT32 from 512 MiB on; below it makes
/// FAT16, which pi-burn does not write, so such partitions are left for disko to format.
pub const FAT32_MIN: u64 = 512 << 20;
