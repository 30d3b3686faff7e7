//! A FAT32 volume being built, patched in place: the corrections fatfs 0.3.6's
//! format needs, made in place: each says what `fsck.fat -n` would otherwise report.

use super::bpb::Bpb;
use crate::disk::sparse::SparseImage;
use crate::util::le::u32_at;
use anyhow::{bail, Context, Result};

/// Just enough of a FAT32 volume's geometry to walk and patch it in place.
pub struct RawFat {
    pub(super) offset: u64,
    pub(super) bytes_per_sector: u64,
    pub(super) cluster_size: u64,
    pub(super) fat_start: u64,
    pub(super) fat_bytes: u64,
    pub(super) nfats: u64,
    pub(super) data_start: u64,
    pub(super) root_cluster: u32,
    pub(super) fsinfo_sector: u64,
    pub(super) backup_boot_sector: u64,
    pub clusters: u32,
}

impl RawFat {
    pub fn open(disk: &SparseImage, offset: u64) -> Result<Self> {
        let mut bs = [0u8; 512];
        disk.read_at(offset, &mut bs);
        if bs[510..512] != [0x55, 0xAA] || &bs[82..90] != b"FAT32   " {
            bail!("no FAT32 boot sector at offset {offset}");
        }
        let b = Bpb::parse(&bs, disk.size().saturating_sub(offset))
            .map_err(|e| anyhow::anyhow!("the FAT32 volume at offset {offset}: {e}"))?;
        Ok(RawFat {
            offset,
            bytes_per_sector: b.bytes_per_sector,
            cluster_size: b.cluster_size(),
            fat_start: b.fat_start(),
            fat_bytes: b.fat_bytes(),
            nfats: b.nfats,
            data_start: b.data_start(),
            root_cluster: b.root_cluster,
            fsinfo_sector: b.fsinfo_sector,
            backup_boot_sector: b.backup_boot_sector,
            clusters: b.clusters(),
        })
    }

    /// Fills in the FSInfo free count and next-free hint; returns the free count.
    pub(super) fn fix_fsinfo(&mut self, disk: &mut SparseImage) -> Result<u32> {
        let mut fat = vec![0u8; self.fat_bytes as usize];
        disk.read_at(self.offset + self.fat_start, &mut fat);
        let max = self.clusters + 2;
        let mut free = 0u32;
        let mut first_free = None;
        for c in 2..max {
            if u32_at(&fat, 4 * c as usize).unwrap_or(0) & 0x0FFF_FFFF == 0 {
                free += 1;
                first_free.get_or_insert(c);
            }
        }
        // Both FAT copies must agree (fatfs mirrors every update).
        for n in 1..self.nfats {
            let mut other = vec![0u8; self.fat_bytes as usize];
            disk.read_at(
                self.offset + self.fat_start + n * self.fat_bytes,
                &mut other,
            );
            if other != fat {
                bail!("FAT copy {n} differs from the first one");
            }
        }
        let fsinfo = self.offset + self.fsinfo_sector * self.bytes_per_sector;
        let mut sig = [0u8; 4];
        disk.read_at(fsinfo, &mut sig);
        if &sig != b"RRaA" {
            bail!("FSInfo sector has no signature");
        }
        disk.write_at(fsinfo + 488, &free.to_le_bytes())?;
        disk.write_at(
            fsinfo + 492,
            &first_free.unwrap_or(0xFFFF_FFFF).to_le_bytes(),
        )?;
        Ok(free)
    }

    pub(super) fn set_hidden_sectors(&mut self, disk: &mut SparseImage, hidden: u64) -> Result<()> {
        let h = u32::try_from(hidden)
            .context("partition start does not fit the FAT hidden-sectors field")?;
        for sector in [0, self.backup_boot_sector] {
            disk.write_at(
                self.offset + sector * self.bytes_per_sector + 28,
                &h.to_le_bytes(),
            )?;
        }
        Ok(())
    }
}
