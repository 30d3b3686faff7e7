//! The SD card, built in memory: the firmware partition's FAT32, then the partition table.

use crate::disk::fat::{build_fat32, FatInfo, FatSpec, Timestamp};
use crate::disk::geometry::{DiskPlan, PartitionPlan};
use crate::disk::sparse::SparseImage;
use crate::disk::table::write_table;
use crate::firmware::fileset::FileSet;
use crate::ssd::DiskoPart;
use crate::util::ids::derive_u32;
use anyhow::{Context, Result};

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

/// Whether pi-burn formats a partition as disko would, or why it leaves it for disko.
pub fn format_decision(p: &PartitionPlan, part: &DiskoPart, ss: u64) -> Option<Result<(), String>> {
    let c = &part.content;
    if c.kind.as_deref() != Some("filesystem") || c.format.as_deref() != Some("vfat") {
        return None;
    }
    if !c.extra_args.is_empty() {
        return Some(Err(format!(
            "partition {} ({}) left unformatted: disko formats it with mkfs.vfat {}",
            p.number,
            p.name,
            c.extra_args.join(" ")
        )));
    }
    if p.sectors() * ss < FAT32_MIN {
        return Some(Err(format!(
            "partition {} ({}) left unformatted: below 512 MiB mkfs.vfat makes FAT16, which disko will do",
            p.number, p.name
        )));
    }
    Some(Ok(()))
}

/// The SSD in memory: every partition's ends wiped, FAT32 on the vfat partitions that disko's
/// mkfs.vfat would make FAT32 (unless `format` is false), the GPT. Also returns why any vfat
/// partition was left for disko.
pub fn build_ssd(
    plan: &DiskPlan,
    disk: &crate::ssd::DiskoDisk,
    format: bool,
    seed: &str,
    timestamp: Timestamp,
) -> Result<(SparseImage, Vec<Formatted>, Vec<String>)> {
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
    let mut left = vec![];
    if format {
        for (p, d) in plan.partitions.iter().zip(&disk.partitions) {
            match format_decision(p, d, ss) {
                None => {}
                Some(Err(why)) => left.push(why),
                Some(Ok(())) => {
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
                    .with_context(|| format!("partition {} ({})", p.number, p.name))?;
                    formatted.push(Formatted {
                        partition: p.number,
                        label: p.name.clone(),
                        fat,
                    });
                }
            }
        }
    }
    write_table(plan, &mut img)?;
    Ok((img, formatted, left))
}
