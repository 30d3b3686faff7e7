//! Reading a card back: its partition table against the plan, and every file of its FAT
//! against the firmware. Each difference is one line.

use crate::disk::geometry::{DiskPlan, TableKind};
use crate::disk::record::{self, CardRecord};
use crate::disk::table::{read_table, ReadOnly};
pub use crate::error::Mismatch;
use crate::firmware::digest::Sha256Digest;
use crate::firmware::fileset::{FileSet, Node};
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::io::{Read, Seek};

/// What verifying a card found.
#[derive(Debug, Clone, Default)]
pub struct Verified {
    /// Differences from what should be there (exit 3).
    pub mismatches: Vec<String>,
    /// What the firmware changed in its variable store after boot: named, not a difference.
    pub changes: Vec<String>,
}

/// A UEFI setting the user asked to check: the card's store must hold exactly these bytes
/// (a difference is a mismatch, not a change the firmware made).
#[derive(Debug, Clone)]
pub struct Asked {
    pub def: &'static crate::firmware::uefivars::settings::Def,
    pub bytes: Vec<u8>,
    /// The value as the user gave it, for the message.
    pub shown: String,
}

/// Compares the table of `disk` with `plan` and the FAT of its partition `fat_partition`
/// (1-based) with `files` and `label`; `asked` are settings whose value on the card must be
/// the one asked for.
pub fn verify_card<R: Read + Seek>(
    disk: &mut R,
    plan: &DiskPlan,
    fat_partition: u32,
    files: &FileSet,
    label: &str,
    asked: &[Asked],
) -> Result<Verified> {
    let out = table_differences(disk, plan)?;
    if !out.is_empty() {
        return Ok(Verified {
            mismatches: out,
            changes: vec![],
        });
    }
    let mut changes = vec![];
    let mut asked_found = vec![];
    let mut mismatches = files_differences(
        disk,
        plan,
        fat_partition,
        (files, label),
        &mut changes,
        (asked, &mut asked_found),
    )?;
    // The settings asked for: checked against the card's store, whatever the firmware did.
    for (a, found) in asked
        .iter()
        .zip(asked_found.iter().chain(std::iter::repeat(&None)))
    {
        if found.as_deref() != Some(a.bytes.as_slice()) {
            mismatches.push(format!(
                "UEFI {} on the card is {}, not {} as asked",
                a.def.name,
                match found {
                    None => format!("not set (the firmware's default {})", a.def.default),
                    Some(b) => a
                        .def
                        .decode(b)
                        .map_or(format!("{} bytes of another width", b.len()), |v| v
                            .to_string()),
                },
                a.shown
            ));
        }
        let prefix = format!("UEFI {}:", a.def.name);
        changes.retain(|c| !c.starts_with(&prefix));
    }
    Ok(Verified {
        mismatches,
        changes,
    })
}

/// The table of `disk` against `plan`, one line per difference.
fn table_differences<R: Read + Seek>(disk: &mut R, plan: &DiskPlan) -> Result<Vec<String>> {
    let mut out = vec![];
    if plan.table == TableKind::Gpt {
        // As sgdisk -v: a damaged header or a missing backup is a mismatch, even when the
        // other copy would still be readable.
        let problems = crate::disk::gptcheck::check(disk, plan.size, plan.sector_size);
        if !problems.is_empty() {
            return Ok(problems);
        }
    }
    let found = match read_table(disk, plan.size, Some(plan.sector_size)) {
        Ok(t) => t,
        Err(e) => return Ok(vec![format!("partition table: {e:#}")]),
    };
    if found.table != plan.table {
        out.push(format!(
            "partition table: expected {}, found {}",
            plan.table.name(),
            found.table.name()
        ));
        return Ok(out);
    }
    if found.sector_size != plan.sector_size {
        out.push(format!(
            "sector size: expected {}, found {}",
            plan.sector_size, found.sector_size
        ));
        return Ok(out);
    }
    for want in &plan.partitions {
        let Some(got) = found.partitions.iter().find(|p| p.number == want.number) else {
            out.push(format!("partition {}: missing", want.number));
            continue;
        };
        let n = want.number;
        if (got.first_lba, got.last_lba) != (want.first_lba, want.last_lba) {
            out.push(format!(
                "partition {n}: expected sectors {}-{}, found {}-{}",
                want.first_lba, want.last_lba, got.first_lba, got.last_lba
            ));
        }
        if got.part_type != want.part_type {
            out.push(format!(
                "partition {n}: expected type {}, found {}",
                want.part_type, got.part_type
            ));
        }
        if got.name != want.name {
            out.push(format!(
                "partition {n}: expected name '{}', found '{}'",
                want.name, got.name
            ));
        }
    }
    for got in &found.partitions {
        if !plan.partitions.iter().any(|p| p.number == got.number) {
            out.push(format!(
                "partition {}: not expected ({} sectors, type {})",
                got.number,
                got.sectors(),
                got.part_type
            ));
        }
    }
    Ok(out)
}

/// Partition `fat_partition`'s FAT against `files` and `label`, one line per difference.
/// `asked`: the settings to look up in the card's store, and where their values go.
fn files_differences<R: Read + Seek>(
    disk: &mut R,
    plan: &DiskPlan,
    fat_partition: u32,
    (files, label): (&FileSet, &str),
    changes: &mut Vec<String>,
    (asked, found): (&[Asked], &mut Vec<Option<Vec<u8>>>),
) -> Result<Vec<String>> {
    let mut out = vec![];
    let part = plan
        .partitions
        .iter()
        .find(|p| p.number == fat_partition)
        .context("the plan has no FAT partition")?;
    let start = part.first_lba * plan.sector_size;
    let end = (part.last_lba + 1) * plan.sector_size;
    // Chains first, with a bound: a loop or a cross-link is a mismatch, not an endless walk.
    let chains = crate::disk::fatcheck::check(disk, start, end - start);
    if !chains.is_empty() {
        return Ok(chains
            .into_iter()
            .map(|l| format!("partition {fat_partition}: {l}"))
            .collect());
    }
    let slice = fscommon::StreamSlice::new(ReadOnly(&mut *disk), start, end)?;
    let fs =
        match fatfs::FileSystem::new(slice, fatfs::FsOptions::new().update_accessed_date(false)) {
            Ok(fs) => fs,
            Err(e) => {
                return Ok(vec![format!(
                    "partition {fat_partition}: no readable FAT filesystem ({e})"
                )])
            }
        };
    if fs.fat_type() != fatfs::FatType::Fat32 {
        out.push(format!(
            "partition {fat_partition}: expected FAT32, found {:?}",
            fs.fat_type()
        ));
    }
    let got_label = fs.volume_label();
    if got_label.trim_end() != label.to_ascii_uppercase() {
        out.push(format!(
            "filesystem label: expected '{}', found '{}'",
            label.to_ascii_uppercase(),
            got_label.trim_end()
        ));
    }
    // Walk the card.
    let mut on_card = BTreeSet::new();
    crate::disk::cardread::walk(&fs, "the card", |path, entry| {
        if path == record::PATH && files.get(path).is_none() {
            // pi-burn's own record: it must list exactly the firmware's files.
            out.extend(check_record(entry.to_file(), files));
            return Ok(false);
        }
        if !on_card.insert(path.to_string()) {
            out.push(format!("/{path}: two entries of this name on the card"));
            return Ok(false);
        }
        match files.get(path) {
            None => out.push(format!("/{path}: on the card but not in the firmware")),
            Some(Node::Dir) if !entry.is_dir() => {
                out.push(format!("/{path}: expected a directory, found a file"))
            }
            Some(Node::File { .. }) if entry.is_dir() => {
                out.push(format!("/{path}: expected a file, found a directory"))
            }
            Some(Node::Dir) => return Ok(true),
            Some(Node::File { data, .. }) => {
                let mut content = vec![];
                entry
                    .to_file()
                    .take(data.len() as u64 + 1)
                    .read_to_end(&mut content)
                    .with_context(|| format!("reading /{path} on the card"))?;
                compare_file(path, data, &content, &mut out, changes);
                if path == record::STORE_FILE {
                    *found = live_values(&content, asked);
                }
            }
        }
        Ok(false)
    })?;
    for (path, _) in files.iter() {
        if !on_card.contains(path) {
            out.push(format!("/{path}: missing from the card"));
        }
    }
    Ok(out)
}

/// One file of the card (`content`) against the firmware's (`data`): a difference, or, for
/// RPI_EFI.fd, what the firmware changed inside its variable region.
fn compare_file(
    path: &str,
    data: &[u8],
    content: &[u8],
    out: &mut Vec<String>,
    changes: &mut Vec<String>,
) {
    if content.len() != data.len() {
        out.push(format!(
            "/{path}: expected {} bytes, found {}",
            data.len(),
            content.len()
        ));
    } else if content != data && path == record::STORE_FILE {
        // The firmware rewrites its variable region after boot: outside it the
        // file must be the firmware's, inside it the store must be sound.
        let burned = record::store_of(path, data);
        match burned
            .and_then(|b| crate::disk::cardcheck::store_diff(&b, content, data.len() as u64))
        {
            Some(Ok(ch)) => changes.extend(ch),
            Some(Err(e)) => out.push(format!("/{path}: {e}")),
            None => out.push(format!(
                "/{path}: changed outside its variable store (sha256 expected {}, found {})",
                Sha256Digest::of(data),
                Sha256Digest::of(content)
            )),
        }
    } else if content != data {
        let at = content
            .iter()
            .zip(data)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        out.push(format!(
            "/{path}: content differs from byte {at} (sha256 expected {}, found {})",
            Sha256Digest::of(data),
            Sha256Digest::of(content)
        ));
    }
}

/// The live values of the `asked` settings in a card's RPI_EFI.fd (`None`: not set, or a
/// store that cannot be read, which is a difference of its own).
fn live_values(fd: &[u8], asked: &[Asked]) -> Vec<Option<Vec<u8>>> {
    let Ok(s) = crate::firmware::uefivars::snapshot(fd, record::STORE_FILE) else {
        return vec![None; asked.len()];
    };
    asked
        .iter()
        .map(|a| {
            s.vars
                .iter()
                .find(|v| v.name == a.def.name && v.guid == a.def.guid)
                .map(|v| v.data.clone())
        })
        .collect()
}

/// The card's record against the expected files (as written).
fn check_record(file: impl Read, files: &FileSet) -> Vec<String> {
    let mut bytes = vec![];
    if let Err(e) = file.take(record::MAX_BYTES + 1).read_to_end(&mut bytes) {
        return vec![format!("/{}: unreadable ({e})", record::PATH)];
    }
    let rec = match CardRecord::parse(&bytes, "the card") {
        Ok(r) => r,
        Err(e) => return vec![format!("{e:#}")],
    };
    let expected = files
        .files()
        .map(|(p, d)| (p.to_string(), (d.len() as u64, Sha256Digest::of(d))))
        .collect();
    rec.check_files(&expected, "the firmware gives")
        .into_iter()
        .map(|l| format!("/{} does not describe this firmware: {l}", record::PATH))
        .collect()
}
