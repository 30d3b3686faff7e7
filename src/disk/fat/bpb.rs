//! The one reader of a FAT32 boot sector (its BIOS parameter block), every field checked:
//! used by the builder (to patch what fatfs formatted) and by the readers of cards (the chain
//! check). A field that cannot be FAT32's is an error naming it, never an overflow.

use crate::util::le::{u16_at, u32_at, u8_at};

/// A FAT32 volume's geometry, in bytes relative to the volume's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bpb {
    pub bytes_per_sector: u64,
    pub sectors_per_cluster: u64,
    pub reserved_sectors: u64,
    pub nfats: u64,
    pub total_sectors: u64,
    pub fat_sectors: u64,
    pub root_cluster: u32,
    pub fsinfo_sector: u64,
    pub backup_boot_sector: u64,
}

/// The largest cluster number FAT32 has (28 bits, less the reserved values).
const MAX_CLUSTERS: u64 = 0x0FFF_FFF5;

impl Bpb {
    /// Parses the boot sector `bs` of a volume of `len` bytes.
    pub fn parse(bs: &[u8], len: u64) -> Result<Bpb, String> {
        let f16 = |o| u16_at(bs, o).map(u64::from);
        let f32 = |o| u32_at(bs, o).map(u64::from);
        let short = || "the boot sector is shorter than 512 bytes".to_string();
        if bs.len() < 512 {
            return Err(short());
        }
        let b = Bpb {
            bytes_per_sector: f16(11).ok_or_else(short)?,
            sectors_per_cluster: u8_at(bs, 13).map(u64::from).ok_or_else(short)?,
            reserved_sectors: f16(14).ok_or_else(short)?,
            nfats: u8_at(bs, 16).map(u64::from).ok_or_else(short)?,
            total_sectors: f32(32).ok_or_else(short)?,
            fat_sectors: f32(36).ok_or_else(short)?,
            root_cluster: u32_at(bs, 44).ok_or_else(short)?,
            fsinfo_sector: f16(48).ok_or_else(short)?,
            backup_boot_sector: f16(50).ok_or_else(short)?,
        };
        if !matches!(b.bytes_per_sector, 512 | 1024 | 2048 | 4096)
            || b.sectors_per_cluster == 0
            || !b.sectors_per_cluster.is_power_of_two()
            || b.nfats == 0
            || b.fat_sectors == 0
            || b.reserved_sectors == 0
        {
            return Err("the boot sector's geometry is not FAT32's".into());
        }
        // Every product below is of values under 2^32 and 2^16: no overflow in u64.
        let volume = b.total_sectors * b.bytes_per_sector;
        if volume > len || b.data_start() >= volume {
            return Err("the boot sector describes more than the partition holds".into());
        }
        if b.clusters() < 1 {
            return Err("the boot sector leaves no clusters".into());
        }
        if b.fat_entries_bytes() > b.fat_bytes() {
            return Err("the FAT is smaller than the volume's clusters need".into());
        }
        Ok(b)
    }

    pub fn cluster_size(&self) -> u64 {
        self.sectors_per_cluster * self.bytes_per_sector
    }

    /// Where the first FAT starts.
    pub fn fat_start(&self) -> u64 {
        self.reserved_sectors * self.bytes_per_sector
    }

    /// Bytes of one FAT.
    pub fn fat_bytes(&self) -> u64 {
        self.fat_sectors * self.bytes_per_sector
    }

    /// Where the data area (cluster 2) starts.
    pub fn data_start(&self) -> u64 {
        (self.reserved_sectors + self.nfats * self.fat_sectors) * self.bytes_per_sector
    }

    /// The clusters of the data area (capped at FAT32's maximum).
    pub fn clusters(&self) -> u32 {
        let data = (self.total_sectors * self.bytes_per_sector).saturating_sub(self.data_start());
        (data / self.cluster_size()).min(MAX_CLUSTERS) as u32
    }

    /// Bytes of FAT the clusters use (two reserved entries first).
    pub fn fat_entries_bytes(&self) -> u64 {
        (self.clusters() as u64 + 2) * 4
    }

    /// Where cluster `c` (>= 2) starts.
    pub fn cluster_offset(&self, c: u32) -> u64 {
        self.data_start() + (u64::from(c).saturating_sub(2)) * self.cluster_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sector(patch: impl Fn(&mut [u8])) -> Vec<u8> {
        let mut bs = vec![0u8; 512];
        bs[11..13].copy_from_slice(&512u16.to_le_bytes());
        bs[13] = 8;
        bs[14..16].copy_from_slice(&32u16.to_le_bytes());
        bs[16] = 2;
        bs[32..36].copy_from_slice(&(1u32 << 20).to_le_bytes());
        bs[36..40].copy_from_slice(&1024u32.to_le_bytes());
        bs[44..48].copy_from_slice(&2u32.to_le_bytes());
        patch(&mut bs);
        bs
    }

    #[test]
    fn hostile_fields_are_named_not_overflowed() {
        let len = 512u64 << 20;
        let b = Bpb::parse(&sector(|_| {}), len).unwrap();
        assert_eq!(b.data_start(), (32 + 2048) * 512);
        assert_eq!(b.cluster_size(), 4096);
        for (patch, want) in [
            (
                Box::new(|b: &mut [u8]| b[13] = 0) as Box<dyn Fn(&mut [u8])>,
                "not FAT32's",
            ),
            (Box::new(|b: &mut [u8]| b[13] = 3), "not FAT32's"),
            (
                Box::new(|b: &mut [u8]| b[11..13].copy_from_slice(&0u16.to_le_bytes())),
                "not FAT32's",
            ),
            (Box::new(|b: &mut [u8]| b[16] = 0), "not FAT32's"),
            (
                Box::new(|b: &mut [u8]| b[32..36].copy_from_slice(&u32::MAX.to_le_bytes())),
                "more than the partition",
            ),
            (
                Box::new(|b: &mut [u8]| b[36..40].copy_from_slice(&u32::MAX.to_le_bytes())),
                "more than the partition",
            ),
            (
                Box::new(|b: &mut [u8]| b[36..40].copy_from_slice(&1u32.to_le_bytes())),
                "FAT is smaller",
            ),
        ] {
            let e = Bpb::parse(&sector(patch), len).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
        assert!(Bpb::parse(&[0u8; 100], len).is_err());
    }
}
