//! The SD card, built in memory: the firmware partition's FAT32, then the partition table.

use crate::fat::{build_fat32, FatInfo, FatSpec, Timestamp};
use crate::fileset::FileSet;
use crate::layout::{derive_u32, DiskPlan};
use crate::partition::write_table;
use crate::sparse::SparseImage;
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
        label: label.to_string(),
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
