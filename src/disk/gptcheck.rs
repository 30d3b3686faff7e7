//! The checks `sgdisk -v` makes on a GPT, on raw bytes with checked arithmetic: both headers'
//! signature, size and CRC, their own and alternate LBAs, both entry arrays' CRCs, and that the
//! primary and the backup agree. Each problem is one line naming it.

use std::io::{Read, Seek, SeekFrom};

struct Header {
    bytes: Vec<u8>,
}

impl Header {
    fn u32(&self, o: usize) -> u32 {
        u32::from_le_bytes(self.bytes[o..o + 4].try_into().expect("4 bytes"))
    }
    fn u64(&self, o: usize) -> u64 {
        u64::from_le_bytes(self.bytes[o..o + 8].try_into().expect("8 bytes"))
    }
}

fn read_at<R: Read + Seek>(disk: &mut R, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut b = vec![0u8; len];
    disk.seek(SeekFrom::Start(off))?;
    disk.read_exact(&mut b)?;
    Ok(b)
}

/// Reads and checks the header at `lba`; pushes problems, returns it when it can be used.
fn header<R: Read + Seek>(
    disk: &mut R,
    ss: u64,
    lba: u64,
    which: &str,
    out: &mut Vec<String>,
) -> Option<Header> {
    let Some(off) = lba.checked_mul(ss) else {
        out.push(format!("{which} GPT header: LBA {lba} is past any disk"));
        return None;
    };
    let bytes = match read_at(disk, off, ss as usize) {
        Ok(b) => b,
        Err(e) => {
            out.push(format!("{which} GPT header: cannot read LBA {lba}: {e}"));
            return None;
        }
    };
    if &bytes[..8] != b"EFI PART" {
        out.push(format!(
            "{which} GPT header: no signature at LBA {lba} (missing or wiped)"
        ));
        return None;
    }
    let h = Header { bytes };
    let size = h.u32(12) as usize;
    if !(92..=ss as usize).contains(&size) {
        out.push(format!(
            "{which} GPT header: size {size} is not between 92 and {ss}"
        ));
        return None;
    }
    let mut copy = h.bytes[..size].to_vec();
    copy[16..20].fill(0);
    let crc = crc32fast::hash(&copy);
    if crc != h.u32(16) {
        out.push(format!(
            "{which} GPT header: CRC {:#010x} does not match its contents ({crc:#010x})",
            h.u32(16)
        ));
        return None;
    }
    if h.u64(24) != lba {
        out.push(format!(
            "{which} GPT header: says it lies at LBA {}, found at {lba}",
            h.u64(24)
        ));
    }
    Some(h)
}

/// Reads the entry array a header describes and checks its CRC; returns it.
fn entries<R: Read + Seek>(
    disk: &mut R,
    ss: u64,
    h: &Header,
    which: &str,
    out: &mut Vec<String>,
) -> Option<Vec<u8>> {
    let (lba, n, esize) = (h.u64(72), h.u32(80) as u64, h.u32(84) as u64);
    if !(128..=4096).contains(&esize) || !esize.is_multiple_of(8) || n == 0 || n > 1024 {
        out.push(format!(
            "{which} GPT header: {n} entries of {esize} bytes is not a valid entry array"
        ));
        return None;
    }
    let Some(off) = lba.checked_mul(ss) else {
        out.push(format!("{which} GPT entries: LBA {lba} is past any disk"));
        return None;
    };
    let a = match read_at(disk, off, (n * esize) as usize) {
        Ok(a) => a,
        Err(e) => {
            out.push(format!(
                "{which} GPT entries: cannot read them at LBA {lba}: {e}"
            ));
            return None;
        }
    };
    let crc = crc32fast::hash(&a);
    if crc != h.u32(88) {
        out.push(format!(
            "{which} GPT entries: CRC {:#010x} in the header, computed {crc:#010x}",
            h.u32(88)
        ));
    }
    Some(a)
}

/// Checks the GPT of a disk of `size` bytes with `ss`-byte sectors; empty when sound.
pub fn check<R: Read + Seek>(disk: &mut R, size: u64, ss: u64) -> Vec<String> {
    let mut out = vec![];
    let last = (size / ss).saturating_sub(1);
    let primary = header(disk, ss, 1, "primary", &mut out);
    let primary_entries = primary
        .as_ref()
        .and_then(|h| entries(disk, ss, h, "primary", &mut out));
    if let Some(h) = &primary {
        if h.u64(32) != last {
            out.push(format!(
                "primary GPT header: the backup header should be at the last sector {last}, it says {}",
                h.u64(32)
            ));
        }
    }
    let backup = header(disk, ss, last, "backup", &mut out);
    let backup_entries = backup
        .as_ref()
        .and_then(|h| entries(disk, ss, h, "backup", &mut out));
    if let Some(b) = &backup {
        if b.u64(32) != 1 {
            out.push(format!(
                "backup GPT header: its alternate should be LBA 1, it says {}",
                b.u64(32)
            ));
        }
    }
    if let (Some(p), Some(b)) = (&primary, &backup) {
        for (what, o, len) in [
            ("disk GUID", 56, 16),
            ("first usable LBA", 40, 8),
            ("last usable LBA", 48, 8),
            ("entry count", 80, 4),
            ("entry size", 84, 4),
        ] {
            if p.bytes[o..o + len] != b.bytes[o..o + len] {
                out.push(format!(
                    "primary and backup GPT headers disagree on the {what}"
                ));
            }
        }
    }
    if let (Some(p), Some(b)) = (&primary_entries, &backup_entries) {
        if p != b {
            out.push("primary and backup GPT entry arrays differ".into());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::geometry::{esp_type, SdLayout, TableKind};
    use crate::disk::sparse::SparseImage;
    use crate::disk::table::write_table;
    use crate::util::units::MIB;

    fn card() -> SparseImage {
        let plan = SdLayout {
            sector_size: 512,
            table: TableKind::Gpt,
            mbr_type: 0xef,
            gpt_type: esp_type(),
            partition_size: 8 * MIB,
            partition_name: "disk-sdcard-FIRMWARE".into(),
            seed: "t".into(),
        }
        .plan(10 * MIB)
        .unwrap();
        let mut img = SparseImage::new(plan.size);
        write_table(&plan, &mut img).unwrap();
        img
    }

    #[test]
    fn a_sound_table_passes_and_each_damage_is_named() {
        let mut img = card();
        assert_eq!(check(&mut img, 10 * MIB, 512), Vec::<String>::new());
        // A flipped byte in the primary header: its CRC no longer matches.
        let mut img = card();
        let mut b = [0u8; 1];
        img.read_at(512 + 40, &mut b);
        img.write_at(512 + 40, &[b[0] ^ 1]).unwrap();
        let p = check(&mut img, 10 * MIB, 512);
        assert!(
            p.iter().any(|l| l.contains("primary GPT header: CRC")),
            "{p:?}"
        );
        // The backup wiped.
        let mut img = card();
        img.write_at(10 * MIB - 512, &[0u8; 512]).unwrap();
        let p = check(&mut img, 10 * MIB, 512);
        assert!(
            p.iter()
                .any(|l| l.contains("backup GPT header: no signature")),
            "{p:?}"
        );
        // A crafted header (a huge entry size, CRC made valid) is named, not allocated.
        let mut img = card();
        let mut h = [0u8; 92];
        img.read_at(512, &mut h);
        h[84..88].copy_from_slice(&u32::MAX.to_le_bytes());
        h[16..20].fill(0);
        let c = crc32fast::hash(&h);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        img.write_at(512, &h).unwrap();
        let p = check(&mut img, 10 * MIB, 512);
        assert!(
            p.iter().any(|l| l.contains("not a valid entry array")),
            "{p:?}"
        );
        // A changed entry: the entry array CRC.
        let mut img = card();
        img.write_at(1024 + 60, b"x").unwrap();
        let p = check(&mut img, 10 * MIB, 512);
        assert!(
            p.iter().any(|l| l.contains("primary GPT entries: CRC")),
            "{p:?}"
        );
    }
}
