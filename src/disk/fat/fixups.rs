//! A FAT32 volume's geometry read from its boot sector, and the corrections fatfs 0.3.6's
//! format needs, made in place: each says what `fsck.fat -n` would otherwise report.

use crate::disk::sparse::SparseImage;
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

pub(super) fn le16(b: &[u8], o: usize) -> u64 {
    u16::from_le_bytes([b[o], b[o + 1]]) as u64
}
pub(super) fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

impl RawFat {
    pub fn open(disk: &SparseImage, offset: u64) -> Result<Self> {
        let mut bs = [0u8; 512];
        disk.read_at(offset, &mut bs);
        if bs[510..512] != [0x55, 0xAA] || &bs[82..90] != b"FAT32   " {
            bail!("no FAT32 boot sector at offset {offset}");
        }
        let bytes_per_sector = le16(&bs, 11);
        let spc = bs[13] as u64;
        let reserved = le16(&bs, 14);
        let nfats = bs[16] as u64;
        let total = le32(&bs, 32) as u64;
        let fat_sectors = le32(&bs, 36) as u64;
        let data_sector = reserved + nfats * fat_sectors;
        Ok(RawFat {
            offset,
            bytes_per_sector,
            cluster_size: spc * bytes_per_sector,
            fat_start: reserved * bytes_per_sector,
            fat_bytes: fat_sectors * bytes_per_sector,
            nfats,
            data_start: data_sector * bytes_per_sector,
            root_cluster: le32(&bs, 44),
            fsinfo_sector: le16(&bs, 48),
            backup_boot_sector: le16(&bs, 50),
            clusters: ((total - data_sector) / spc) as u32,
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
            if le32(&fat, 4 * c as usize) & 0x0FFF_FFFF == 0 {
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
