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

/// The SSD in memory: every partition's ends wiped, FAT32 on the vfat partitions (unless
/// `format` is false), the GPT.
pub fn build_ssd(
    plan: &DiskPlan,
    disk: &crate::disko::DiskoDisk,
    format: bool,
    seed: &str,
    timestamp: Timestamp,
) -> Result<(SparseImage, Vec<Formatted>)> {
    let mut img = SparseImage::new(plan.size);
    let ss = plan.sector_size;
    for p in &plan.partitions {
        let start = p.first_lba * ss;
        let len = p.sectors() * ss;
        let w = PARTITION_WIPE.min(len);
        img.zero_range(start, w)?;
        img.zero_range(start + len - w, w)?;
    }
    let mut formatted = vec![];
    if format {
        for (p, d) in plan.partitions.iter().zip(&disk.partitions) {
            if d.content_type.as_deref() == Some("filesystem")
                && d.format.as_deref() == Some("vfat")
            {
                let spec = FatSpec {
                    label: None,
                    volume_id: derive_u32(seed, &format!("fat-volume-id-{}", p.name)),
                    timestamp,
                    sector_size: ss,
                    hidden_sectors: p.first_lba,
                };
                let fat = build_fat32(
                    &mut img,
                    p.first_lba * ss,
                    p.sectors() * ss,
                    &FileSet::new(),
                    &spec,
                )
                .map_err(|e| anyhow::anyhow!("partition {} ({}): {e:#}", p.number, p.name))?;
                formatted.push(Formatted {
                    partition: p.number,
                    label: p.name.clone(),
                    fat,
                });
            }
        }
    }
    write_table(plan, &mut img)?;
    Ok((img, formatted))
}
