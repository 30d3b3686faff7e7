//! Where sgdisk puts each partition when disko runs it, one process per partition:
//! `sgdisk --align-end [--set-alignment=A] --new=N:START:END ...` (gpt.nix `_create`).
//!
//! Each sgdisk process loads the table, derives its alignment from the partitions already there
//! (largest power of two up to 1 MiB dividing every start; at least 8 sectors on disks of
//! 585,937,500 sectors or more), then for `--new`: `low` = first sector of the LARGEST free
//! block, aligned; `high` = last sector of that block (rounded down to the alignment with
//! `--align-end`); START and END read as sgdisk's IeeeToInt does (END relative to the
//! unaligned START); then the start is aligned, earlier when the sectors before it are free, and
//! the partition must fit the free block it starts in. Measured against sgdisk 1.0.9 on image
//! files and 4 KiB-sector loop devices (tests/integration/disko.rs).

use super::model::{DiskoDisk, Hybrid};
use crate::disk::geometry::{
    gpt_type_code, DiskPlan, MbrEntry, PartType, PartitionPlan, TableKind,
};
use crate::util::ids::derive_uuid;
use crate::util::units::MIB;
use anyhow::{bail, Context, Result};

/// sgdisk's SMALLEST_ADVANCED_FORMAT (sectors): on disks this big, alignment is at least 8.
const ADVANCED_FORMAT_SECTORS: u64 = 585_937_500;

/// The GPT as one sgdisk process sees it.
struct Table {
    first_usable: u64,
    last_usable: u64,
    total: u64,
    ss: u64,
    /// (first, last) of every partition made so far.
    parts: Vec<(u64, u64)>,
    alignment: u64,
}

impl Table {
    fn default_alignment(ss: u64) -> u64 {
        (MIB / ss).max(1)
    }

    /// gptfdisk's ComputeAlignment, run when a process loads the table.
    fn compute_alignment(&self) -> u64 {
        let mut exponent = Self::default_alignment(self.ss).trailing_zeros();
        let mut align = 1u64 << exponent;
        for (first, _) in &self.parts {
            loop {
                align = 1u64 << exponent;
                if first % align == 0 || exponent == 0 {
                    break;
                }
                exponent -= 1;
            }
        }
        if align < 8 && self.total >= ADVANCED_FORMAT_SECTORS {
            align = 8;
        }
        align
    }

    fn is_free(&self, s: u64) -> bool {
        s >= self.first_usable
            && s <= self.last_usable
            && !self.parts.iter().any(|(a, b)| s >= *a && s <= *b)
    }

    fn first_available(&self, start: u64) -> Option<u64> {
        if start > self.last_usable {
            return None;
        }
        let mut first = start.max(self.first_usable);
        loop {
            let mut moved = false;
            for (a, b) in &self.parts {
                if first >= *a && first <= *b {
                    first = b + 1;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        (first <= self.last_usable).then_some(first)
    }

    fn last_in_free(&self, start: u64, align: bool) -> u64 {
        let mut nearest = self.last_usable;
        for (a, _) in &self.parts {
            if let Some(end_plus) = a.checked_sub(1) {
                if end_plus >= start && end_plus < nearest {
                    nearest = end_plus;
                }
            }
        }
        if align {
            let rounded = (nearest + 1) / self.alignment * self.alignment;
            if let Some(r) = rounded.checked_sub(1) {
                if r >= start {
                    nearest = r;
                }
            }
        }
        nearest
    }

    fn first_in_largest(&self) -> Option<u64> {
        let (mut best, mut best_size) = (None, 0u64);
        let mut start = 0;
        while let Some(first) = self.first_available(start) {
            let last = self.last_in_free(first, false);
            let size = last - first + 1;
            if size > best_size {
                best_size = size;
                best = Some(first);
            }
            start = last + 1;
        }
        best
    }

    /// gptfdisk's Align: to the boundary before when every sector in between is free, else to
    /// the one after when that is free back to the sector; else unchanged.
    fn align(&self, s: u64) -> u64 {
        let a = self.alignment;
        if s.is_multiple_of(a) {
            return s;
        }
        let earlier = s / a * a;
        let later = earlier + a;
        if earlier >= self.first_usable && (earlier..s).all(|x| self.is_free(x)) {
            return earlier;
        }
        if later <= self.last_usable && (s + 1..=later).all(|x| self.is_free(x)) {
            return later;
        }
        s
    }
}

/// sgdisk's IeeeToInt: `[+|-]NUMBER[UNIT]` in sectors. A unit is one of K, M, G, T, P, E
/// (powers of 1024, any case; smaller than a sector rounds down); any other one letter means
/// sectors. 0 or empty means `default`. `+N` counts from `low`, `-N` back from `high`. Anything
/// sgdisk would read differently from its face value is refused.
fn ieee(v: &str, ss: u64, low: u64, high: u64, default: u64) -> Result<u64> {
    let (sign, rest) = match v.as_bytes().first() {
        Some(b'+') => (Some('+'), &v[1..]),
        Some(b'-') => (Some('-'), &v[1..]),
        _ => (None, v),
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (num, unit) = rest.split_at(digits);
    if (num.is_empty() && !rest.is_empty())
        || unit.chars().count() > 1
        || unit.chars().any(|c| !c.is_ascii_alphabetic())
    {
        bail!("'{v}' is not a position pi-burn reads as sgdisk does ([+|-]NUMBER with an optional K, M, G, T, P, E or s)");
    }
    let n: u64 = if num.is_empty() {
        0
    } else {
        num.parse().with_context(|| format!("'{v}' is too large"))?
    };
    if n == 0 {
        return Ok(default);
    }
    let mut n = n;
    if let Some(i) = "KMGTPE"
        .find(unit.to_ascii_uppercase().as_str())
        .filter(|_| !unit.is_empty())
    {
        let unit_bytes = 1u64 << (10 * (i as u32 + 1));
        if unit_bytes >= ss {
            n = n
                .checked_mul(unit_bytes / ss)
                .with_context(|| format!("'{v}' is too large"))?;
        } else {
            n /= ss / unit_bytes;
        }
    }
    match sign {
        Some('+') => n
            .saturating_sub(1)
            .checked_add(low)
            .with_context(|| format!("'{v}' is too large")),
        Some('-') => high
            .checked_sub(n)
            .with_context(|| format!("'{v}' reaches before the start of the free space")),
        _ => Ok(n),
    }
}

/// The table disko's gpt.nix makes for `disk` on a disk of `size` bytes with `ss`-byte sectors;
/// partition GUIDs from `uuid`, else derived from `seed` (disko's are random).
pub fn plan(disk: &DiskoDisk, size: u64, ss: u64, seed: &str) -> Result<DiskPlan> {
    if ss != 512 && ss != 4096 {
        bail!("sector size {ss} is not supported (512 or 4096)");
    }
    let total = size / ss;
    let entries = DiskPlan::gpt_entry_sectors(ss);
    let last_usable = total
        .checked_sub(2 + entries)
        .filter(|l| *l > 2 + entries)
        .with_context(|| format!("a disk of {size} bytes is too small for a GPT"))?;
    let mut t = Table {
        first_usable: 2 + entries,
        last_usable,
        total,
        ss,
        parts: vec![],
        alignment: 1,
    };
    let mut partitions = vec![];
    for (i, p) in disk.partitions.iter().enumerate() {
        let n = i as u32 + 1;
        let what = || {
            format!(
                "disk '{}', partition '{}' ({})",
                disk.attr,
                super::model::short(&p.attr),
                super::model::short(&p.label)
            )
        };
        t.alignment = if p.alignment != 0 {
            p.alignment
        } else {
            t.compute_alignment()
        };
        let Some(low) = t.first_in_largest() else {
            bail!(
                "{}: there is no free space left on a disk of {} for it",
                what(),
                crate::util::units::human(size)
            );
        };
        let low = t.align(low);
        let high = t.last_in_free(low, true);
        let start =
            ieee(&p.start, ss, low, high, low).with_context(|| format!("{}: start", what()))?;
        let end =
            ieee(&p.end, ss, start, high, high).with_context(|| format!("{}: end", what()))?;
        let start = t.align(start);
        if !t.is_free(start) || start > end || t.last_in_free(start, false) < end {
            bail!(
                "{}: does not fit a disk of {} ({total} sectors of {ss} bytes): sgdisk would be asked for sectors {start}-{end}, which are not all free, and disko's script would stop there",
                what(),
                crate::util::units::human(size)
            );
        }
        t.parts.push((start, end));
        partitions.push(PartitionPlan {
            number: n,
            first_lba: start,
            last_lba: end,
            part_type: PartType::Gpt(p.type_guid),
            name: p.label.clone(),
            guid: p
                .uuid
                .unwrap_or_else(|| derive_uuid(seed, &format!("partition-{}", p.label))),
            attributes: p.attributes,
        });
    }
    let mut plan = DiskPlan {
        sector_size: ss,
        size,
        table: TableKind::Gpt,
        disk_guid: derive_uuid(seed, "disk"),
        mbr_id: 0,
        partitions,
        hybrid_mbr: None,
    };
    plan.hybrid_mbr = hybrid_mbr(disk, &plan)?;
    plan.check(&format!("disk '{}'", disk.attr))?;
    Ok(plan)
}

/// The hybrid MBR of `sgdisk -h I:J[:EE]` followed by disko's `sfdisk --label-nested dos
/// --part-type/--activate`: the hybrid partitions in priority order, each with sgdisk's type for
/// its GPT type unless `mbrPartitionType` says otherwise, and a 0xEE entry over sectors 1 up to
/// the first of them (first in the table with `efiGptPartitionFirst`, the default; last without).
fn hybrid_mbr(disk: &DiskoDisk, plan: &DiskPlan) -> Result<Option<Vec<MbrEntry>>> {
    let hybrids: Vec<(usize, &Hybrid)> = disk
        .partitions
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.hybrid.as_ref().map(|h| (i, h)))
        .collect();
    if hybrids.is_empty() {
        return Ok(None);
    }
    let mut entries = vec![];
    for (i, h) in &hybrids {
        let p = &plan.partitions[*i];
        let d = &disk.partitions[*i];
        let what = || {
            format!(
                "disk '{}', partition '{}'",
                disk.attr,
                super::model::short(&d.attr)
            )
        };
        let mbr_type = match h.mbr_type {
            Some(t) => t,
            None => {
                let code = gpt_type_code(&d.type_guid).with_context(|| {
                    format!("{}: pi-burn does not know which MBR type sgdisk gives GPT type {}; set hybrid.mbrPartitionType", what(), d.type_code)
                })?;
                u8::from_str_radix(&code[..2], 16).expect("type codes are hex")
            }
        };
        let first = u32::try_from(p.first_lba).ok();
        let len = u32::try_from(p.sectors()).ok();
        let (Some(first), Some(len)) = (first, len) else {
            bail!(
                "{}: sectors {}-{} are beyond what an MBR entry can address",
                what(),
                p.first_lba,
                p.last_lba
            );
        };
        entries.push(MbrEntry {
            bootable: h.bootable,
            mbr_type,
            first_lba: first,
            sectors: len,
        });
    }
    let lowest = entries
        .iter()
        .map(|e| e.first_lba)
        .min()
        .expect("one hybrid at least");
    let protective = MbrEntry {
        bootable: false,
        mbr_type: 0xEE,
        first_lba: 1,
        sectors: lowest - 1,
    };
    if disk.efi_gpt_partition_first {
        entries.insert(0, protective);
    } else {
        // disko retypes MBR entry `_index`: right only when the hybrids are partitions 1, 2, ...
        for (pos, (i, h)) in hybrids.iter().enumerate() {
            if (h.mbr_type.is_some() || h.bootable) && pos != *i {
                bail!(
                    "disk '{}', partition '{}': disko's sfdisk call would change MBR entry {} (which holds {}), not the entry of this partition; pi-burn will not write a hybrid MBR that differs from disko's",
                    disk.attr,
                    super::model::short(&disk.partitions[*i].attr),
                    i + 1,
                    if *i < hybrids.len() { "another hybrid partition" } else if *i == hybrids.len() { "the 0xEE entry" } else { "nothing" }
                );
            }
        }
        entries.push(protective);
    }
    Ok(Some(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(total: u64, ss: u64) -> Table {
        let e = DiskPlan::gpt_entry_sectors(ss);
        Table {
            first_usable: 2 + e,
            last_usable: total - 2 - e,
            total,
            ss,
            parts: vec![],
            alignment: Table::default_alignment(ss),
        }
    }

    #[test]
    fn positions_read_as_sgdisk_reads_them() {
        assert_eq!(ieee("0", 512, 2048, 9999, 2048).unwrap(), 2048);
        assert_eq!(ieee("+0", 512, 2048, 9999, 9999).unwrap(), 9999);
        assert_eq!(ieee("-0", 512, 2048, 9999, 9999).unwrap(), 9999);
        assert_eq!(ieee("+1M", 512, 2048, 9999, 9999).unwrap(), 2048 + 2048 - 1);
        assert_eq!(ieee("1500K", 512, 2048, 9999, 2048).unwrap(), 3000);
        assert_eq!(ieee("34s", 512, 2048, 9999, 2048).unwrap(), 34);
        assert_eq!(
            ieee("+6K", 4096, 100, 9999, 9999).unwrap(),
            100,
            "6K at 4096 is 1 sector"
        );
        assert_eq!(ieee("-1M", 4096, 6, 9999, 9999).unwrap(), 9999 - 256);
        assert_eq!(
            ieee("7x", 512, 0, 0, 0).unwrap(),
            7,
            "any other letter: sectors"
        );
        for bad in [
            "1.5G",
            "1GiB",
            "abc",
            "99999999999999999999",
            "+99999999999999E",
        ] {
            assert!(ieee(bad, 512, 0, 10, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn alignment_follows_existing_partitions() {
        let mut t = table(134217728, 512);
        assert_eq!(t.compute_alignment(), 2048);
        t.parts.push((34, 2081));
        assert_eq!(t.compute_alignment(), 2);
        let mut big = table(ADVANCED_FORMAT_SECTORS, 512);
        big.parts.push((34, 2081));
        assert_eq!(big.compute_alignment(), 8);
        assert_eq!(table(1 << 20, 4096).compute_alignment(), 256);
    }

    #[test]
    fn the_seed_config_on_a_500gb_ssd_matches_facts() {
        // disko's sgdisk on a 500 GB SSD of 976773168 sectors: BOOT 2048-2099199, zfs 2099200-976773119.
        let text = include_str!("../../fixtures/flake/hosts/pi-alpha/disk-config.nix");
        let v = crate::ssd::nixeval::eval(text, "seed").unwrap();
        let devices = &v["disko"]["devices"];
        let d = crate::ssd::choose_disk(devices, None, false, "seed").unwrap();
        let labels: Vec<&str> = d.partitions.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["disk-usb-ssd-BOOT", "disk-usb-ssd-zfs"]);
        assert_eq!(
            d.partitions[1].type_code, "8300",
            "zfs is 8300 unless type is set"
        );
        let p = plan(&d, 976773168 * 512, 512, "s").unwrap();
        let got: Vec<(u64, u64)> = p
            .partitions
            .iter()
            .map(|p| (p.first_lba, p.last_lba))
            .collect();
        assert_eq!(got, [(2048, 2099199), (2099200, 976773119)]);
        let sd = crate::ssd::choose_disk(devices, None, true, "seed").unwrap();
        assert_eq!(sd.partitions[0].label, "disk-sdcard-FIRMWARE");
    }
}
