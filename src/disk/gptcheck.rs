//! The checks `sgdisk -v` makes on a GPT, on raw bytes with checked arithmetic: both headers'
//! signature, size and CRC, their own and alternate LBAs, both entry arrays' CRCs, and that the
//! primary and the backup agree. Each problem is one line naming it.

use crate::disk::gpt::{Header, HeaderProblem};
use std::io::{Read, Seek, SeekFrom};

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
    match Header::parse(&bytes, ss, lba) {
        Ok(h) => Some(h),
        Err(HeaderProblem::Missing) => {
            out.push(format!(
                "{which} GPT header: no signature at LBA {lba} (missing or wiped)"
            ));
            None
        }
        Err(HeaderProblem::Damaged(why)) => {
            out.push(format!("{which} GPT header: {why}"));
            None
        }
    }
}

/// Reads the entry array a header describes and checks its CRC; returns it.
fn entries<R: Read + Seek>(
    disk: &mut R,
    h: &Header,
    which: &str,
    out: &mut Vec<String>,
) -> Option<Vec<u8>> {
    let lba = h.entries_lba;
    let Some(off) = h.entries_offset() else {
        out.push(format!("{which} GPT entries: LBA {lba} is past any disk"));
        return None;
    };
    let a = match read_at(disk, off, h.entry_bytes() as usize) {
        Ok(a) => a,
        Err(e) => {
            out.push(format!(
                "{which} GPT entries: cannot read them at LBA {lba}: {e}"
            ));
            return None;
        }
    };
    if !h.entries_crc_ok(&a) {
        out.push(format!(
            "{which} GPT entries: CRC {:#010x} in the header, computed {:#010x}",
            h.entries_crc,
            crc32fast::hash(&a)
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
        .and_then(|h| entries(disk, h, "primary", &mut out));
    if let Some(h) = &primary {
        if h.alternate_lba != last {
            out.push(format!(
                "primary GPT header: the backup header should be at the last sector {last}, it says {}",
                h.alternate_lba
            ));
        }
    }
    let backup = header(disk, ss, last, "backup", &mut out);
    let backup_entries = backup
        .as_ref()
        .and_then(|h| entries(disk, h, "backup", &mut out));
    if let Some(b) = &backup {
        if b.alternate_lba != 1 {
            out.push(format!(
                "backup GPT header: its alternate should be LBA 1, it says {}",
                b.alternate_lba
            ));
        }
    }
    if let (Some(p), Some(b)) = (&primary, &backup) {
        for (what, same) in [
            ("disk GUID", p.disk_guid == b.disk_guid),
            ("first usable LBA", p.first_usable == b.first_usable),
            ("last usable LBA", p.last_usable == b.last_usable),
            ("entry count", p.entry_count == b.entry_count),
            ("entry size", p.entry_size == b.entry_size),
        ] {
            if !same {
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
            partition_guid: None,
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
