//! The card's record: `/pi-burn.json` on the firmware partition says what the card is (board,
//! firmware and its hashes, node, settings, config.txt edits, the table) and the SHA-256 of
//! every file as written, so that a card can be checked later without the zip. Its bytes depend
//! only on the inputs (no clock, no host).

use crate::disk::geometry::{DiskPlan, PartType, TableKind};
use crate::disk::table::FoundTable;
use crate::firmware::configtxt::EditApplied;
use crate::firmware::digest::Sha256Digest;
use crate::firmware::fileset::FileSet;
use crate::firmware::uefivars::{Applied, Value};
use crate::firmware::Firmware;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where the record lives on the FAT partition.
pub const PATH: &str = "pi-burn.json";
/// The firmware file whose variable store the firmware rewrites.
pub const STORE_FILE: &str = "RPI_EFI.fd";
/// The largest record: written only when it is no larger (checked before the card is built),
/// read only up to it. 16 MiB holds the record of about 100,000 files.
pub const MAX_BYTES: u64 = 16 << 20;
const FORMAT: u32 = 2;

/// How many of each a record may hold, written once for the writer (a card that would need
/// more is refused before it is built) and the reader (a record with more is refused before it
/// is checked): every check of a record is then bounded, whatever a card says.
pub const MAX_SETTINGS: usize = 64;
pub const MAX_EDITS: usize = 256;
/// bootconf.txt properties of an EEPROM card's record, and its bootconf.txt: the bootloader
/// keeps at most 4076 bytes of it.
pub const MAX_PROPERTIES: usize = 128;
pub const MAX_BOOTCONF: usize = 4076;

/// Refuses more than `max` of `what` (in `origin`).
pub fn check_count(n: usize, max: usize, what: &str, origin: &str) -> Result<()> {
    if n > max {
        bail!("{origin}: {n} {what}, more than the {max} a pi-burn card records");
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardRecord {
    /// The record's format (2: the seed, the disk's size, start4.elf's build and the
    /// variable store as burned were added to 1).
    pub record: u32,
    pub made_by: String,
    pub node: Option<String>,
    pub board: String,
    /// The seed of the card's GUIDs and FAT volume id when `--seed` gave one; otherwise they
    /// derive from the board, the release, the partition's name and the node.
    pub seed: Option<String>,
    pub firmware: RecFirmware,
    pub table: RecTable,
    pub uefi: Vec<RecSetting>,
    pub config_txt: Vec<RecEdit>,
    /// RPI_EFI.fd's variable store as it was burned (the firmware rewrites it after boot).
    pub store: Option<RecStore>,
    pub files: Vec<RecFile>,
    /// The manifest the card was made with, when it was not pi-burn's built-in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<RecManifest>,
}

/// A manifest file: its name (without its directory, so that the record, and the card, stay
/// the same wherever the file lies) and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecManifest {
    pub name: String,
    pub sha256: String,
}

/// The name a manifest is recorded by: its file name, without the hash a Nix store path puts
/// before it (`/nix/store/HASH-test-manifest.toml` is `test-manifest.toml`, as it is outside a
/// Nix build: the same card either way).
fn manifest_name(path: &str) -> String {
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nix32 = |c: u8| c.is_ascii_digit() || (c.is_ascii_lowercase() && !b"eotu".contains(&c));
    match name.as_bytes().get(..33) {
        Some(h) if h[32] == b'-' && h[..32].iter().all(|c| nix32(*c)) && name.len() > 33 => {
            name[33..].to_string()
        }
        _ => name,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecStore {
    pub file: String,
    /// The region the firmware rewrites: its first byte and length.
    pub offset: u64,
    pub len: u64,
    /// The SHA-256 of every byte of the file outside the region (the firmware's code).
    pub outside_sha256: String,
    /// The variables, each as edk2 reads it.
    pub variables: Vec<RecVar>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecVar {
    pub name: String,
    pub guid: String,
    pub attributes: u32,
    pub bytes: u64,
    /// The data in hex, for data of at most 256 bytes.
    pub data: Option<String>,
    pub sha256: String,
}

/// Data recorded in hex up to this size.
const MAX_HEX: usize = 256;

impl RecVar {
    pub fn of(v: &crate::firmware::uefivars::Effective) -> Self {
        RecVar {
            name: v.name.clone(),
            guid: v.guid.to_string().to_uppercase(),
            attributes: v.attributes,
            bytes: v.data.len() as u64,
            data: (v.data.len() <= MAX_HEX)
                .then(|| v.data.iter().map(|b| format!("{b:02x}")).collect()),
            sha256: Sha256Digest::of(&v.data).hex(),
        }
    }

    /// The data, when the record holds it.
    pub fn bytes_of(&self) -> Option<Vec<u8>> {
        let h = self.data.as_deref()?;
        if h.len() % 2 != 0 || h.len() > 2 * MAX_HEX {
            return None;
        }
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
            .collect()
    }
}

/// The variable store of `fd` as a record holds it.
pub fn store_of(file: &str, fd: &[u8]) -> Option<RecStore> {
    store_and_digest(file, fd).map(|(s, _)| s)
}

/// [`store_of`], and the SHA-256 of the whole file (from the same pass).
fn store_and_digest(file: &str, fd: &[u8]) -> Option<(RecStore, Sha256Digest)> {
    let s = crate::firmware::uefivars::snapshot(fd, file).ok()?;
    let store = RecStore {
        file: file.to_string(),
        offset: s.offset as u64,
        len: s.len as u64,
        outside_sha256: s.outside.hex(),
        variables: s.vars.iter().map(RecVar::of).collect(),
    };
    Some((store, s.whole))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecFirmware {
    pub version: String,
    pub zip_sha256: String,
    pub nar_sha256: String,
    /// start4.elf's build, read from its build strings.
    pub start4: Option<crate::firmware::start4::Build>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecTable {
    pub kind: String,
    pub sector_size: u64,
    pub partition: u32,
    pub first_lba: u64,
    pub last_lba: u64,
    #[serde(rename = "type")]
    pub part_type: String,
    pub name: String,
    pub label: String,
    /// The whole disk's size (an image's, or the card's).
    pub disk_bytes: u64,
    /// The partition's GUID when the node's config pins it (`uuid`; else the seed gives it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_guid: Option<String>,
    /// The firmware on a node's SSD, in its ESP (`ssd --with-firmware`): the disk's other
    /// partitions, which are the OS's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssd: Option<RecSsd>,
}

/// The SSD a firmware ESP is partition 1 of: its disko disk and its other partitions (their
/// ends are left out: a larger SSD gets the last one grown, as disko lays it out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecSsd {
    pub disk: String,
    pub partitions: Vec<RecPart>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecPart {
    pub number: u32,
    pub first_lba: u64,
    #[serde(rename = "type")]
    pub part_type: String,
    pub name: String,
}

impl RecSsd {
    /// The SSD of `plan` (partition 1 the ESP), disko disk `disk`.
    pub fn of(plan: &DiskPlan, disk: &str) -> Self {
        RecSsd {
            disk: disk.to_string(),
            partitions: plan
                .partitions
                .iter()
                .skip(1)
                .map(|p| RecPart {
                    number: p.number,
                    first_lba: p.first_lba,
                    part_type: type_text(p.part_type),
                    name: p.name.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecSetting {
    pub name: String,
    pub guid: String,
    pub value: Value,
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecEdit {
    pub key: String,
    pub value: String,
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

impl RecTable {
    /// The table of `plan`, its partition 1 labelled `label`.
    pub fn of(plan: &DiskPlan, label: &str) -> Self {
        let p = &plan.partitions[0];
        RecTable {
            kind: plan.table.name().into(),
            sector_size: plan.sector_size,
            partition: p.number,
            first_lba: p.first_lba,
            last_lba: p.last_lba,
            part_type: type_text(p.part_type),
            name: p.name.clone(),
            label: label.to_ascii_uppercase(),
            disk_bytes: plan.size,
            partition_guid: None,
            ssd: None,
        }
    }

    /// Differences between this table and the one found.
    pub fn check(&self, found: &FoundTable, label: &str) -> Vec<String> {
        let t = self;
        let mut out = vec![];
        if found.table.name() != t.kind {
            out.push(format!(
                "partition table: recorded {}, found {}",
                t.kind,
                found.table.name()
            ));
            return out;
        }
        if found.sector_size != t.sector_size {
            out.push(format!(
                "sector size: recorded {}, found {}",
                t.sector_size, found.sector_size
            ));
            return out;
        }
        let Some(p) = found.partitions.iter().find(|p| p.number == t.partition) else {
            out.push(format!("partition {}: missing", t.partition));
            return out;
        };
        if (p.first_lba, p.last_lba) != (t.first_lba, t.last_lba) {
            out.push(format!(
                "partition {}: recorded sectors {}-{}, found {}-{}",
                t.partition, t.first_lba, t.last_lba, p.first_lba, p.last_lba
            ));
        }
        if type_text(p.part_type) != t.part_type {
            out.push(format!(
                "partition {}: recorded type {}, found {}",
                t.partition,
                t.part_type,
                type_text(p.part_type)
            ));
        }
        if found.table == TableKind::Gpt && p.name != t.name {
            out.push(format!(
                "partition {}: recorded name '{}', found '{}'",
                t.partition, t.name, p.name
            ));
        }
        let others = t.ssd.as_ref().map_or(&[][..], |s| &s.partitions[..]);
        for q in &found.partitions {
            if q.number == t.partition {
                continue;
            }
            let Some(r) = others.iter().find(|r| r.number == q.number) else {
                out.push(format!("partition {}: not recorded", q.number));
                continue;
            };
            let got = (q.first_lba, type_text(q.part_type), q.name.as_str());
            if got != (r.first_lba, r.part_type.clone(), r.name.as_str()) {
                out.push(format!(
                    "partition {}: recorded '{}' ({}) from sector {}, found '{}' ({}) from sector {}",
                    q.number, r.name, r.part_type, r.first_lba, got.2, got.1, got.0
                ));
            }
        }
        for r in others {
            if !found.partitions.iter().any(|q| q.number == r.number) {
                out.push(format!("partition {} ('{}'): missing", r.number, r.name));
            }
        }
        if label.trim_end() != t.label {
            out.push(format!(
                "filesystem label: recorded '{}', found '{}'",
                t.label,
                label.trim_end()
            ));
        }
        out
    }
}

/// Differences between the recorded files and `seen` (path -> size, SHA-256), the record
/// itself left out.
/// `found` names where `seen` comes from ("found" on the card, "the firmware gives").
pub fn check_files(
    files: &[RecFile],
    seen: &BTreeMap<String, (u64, Sha256Digest)>,
    found: &str,
) -> Vec<String> {
    let mut out = vec![];
    for f in files {
        match seen.get(&f.path) {
            None => out.push(format!("/{}: missing from the card", f.path)),
            Some((bytes, sha)) if *bytes != f.bytes || sha.hex() != f.sha256 => out.push(format!(
                "/{}: changed (recorded {} bytes, sha256 {}; {found} {bytes} bytes, sha256 {sha})",
                f.path, f.bytes, f.sha256
            )),
            Some(_) => {}
        }
    }
    for path in seen.keys() {
        if path != PATH && !files.iter().any(|f| &f.path == path) {
            out.push(format!("/{path}: on the card but not in its record"));
        }
    }
    out
}

impl RecFile {
    /// Every file of `files`, hashed.
    pub fn all(files: &FileSet) -> Vec<RecFile> {
        Self::hashed(files, &[])
    }

    /// Every file of `files`, hashed, except those whose digest `known` already gives.
    pub fn hashed(files: &FileSet, known: &[(&str, Sha256Digest)]) -> Vec<RecFile> {
        files
            .files()
            .map(|(path, data)| RecFile {
                path: path.to_string(),
                bytes: data.len() as u64,
                sha256: known
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map_or_else(|| Sha256Digest::of(data), |(_, d)| *d)
                    .hex(),
            })
            .collect()
    }
}

fn type_text(t: PartType) -> String {
    match t {
        PartType::Gpt(g) => g.to_string().to_uppercase(),
        PartType::Mbr(b) => format!("0x{b:02x}"),
    }
}

/// What the card carries, for the record.
pub struct Inputs<'a> {
    pub fw: &'a Firmware,
    pub node: Option<&'a str>,
    pub uefi: &'a [Applied],
    pub config_txt: &'a [EditApplied],
    pub label: &'a str,
    /// The seed `--seed` gave, if it gave one.
    pub seed: Option<&'a str>,
    /// The manifest file it was made with (not the built-in one): (path, SHA-256).
    pub manifest: Option<&'a (String, String)>,
}

impl CardRecord {
    /// The record of `files` (the firmware as written) on partition 1 of `plan`.
    pub fn new(i: &Inputs, plan: &DiskPlan, files: &FileSet) -> Self {
        let store = files
            .file(STORE_FILE)
            .and_then(|fd| store_and_digest(STORE_FILE, fd));
        let known: Vec<(&str, Sha256Digest)> = store
            .as_ref()
            .map(|(_, d)| (STORE_FILE, *d))
            .into_iter()
            .collect();
        CardRecord {
            record: FORMAT,
            made_by: format!("pi-burn {}", env!("CARGO_PKG_VERSION")),
            node: i.node.map(str::to_string),
            board: i.fw.board.clone(),
            seed: i.seed.map(str::to_string),
            firmware: RecFirmware {
                version: i.fw.version.clone(),
                zip_sha256: i.fw.zip_sha256.hex(),
                nar_sha256: i.fw.nar_sha256.sri(),
                start4: i.fw.start4.clone(),
            },
            table: RecTable::of(plan, i.label),
            uefi: i
                .uefi
                .iter()
                .map(|a| RecSetting {
                    name: a.name.clone(),
                    guid: a.guid.clone(),
                    value: a.value.clone(),
                    from: a.from.clone(),
                })
                .collect(),
            config_txt: i
                .config_txt
                .iter()
                .map(|e| RecEdit {
                    key: e.key.clone(),
                    value: e.value.clone(),
                    from: e.from.clone(),
                })
                .collect(),
            store: store.map(|(s, _)| s),
            files: RecFile::hashed(files, &known),
            manifest: i.manifest.map(|(path, sha256)| RecManifest {
                name: manifest_name(path),
                sha256: sha256.clone(),
            }),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(self).expect("a record serialises");
        b.push(b'\n');
        b
    }

    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self> {
        let r: CardRecord = serde_json::from_slice(bytes)
            .with_context(|| format!("{origin}: /{PATH} is not a pi-burn card record"))?;
        if r.record != FORMAT {
            bail!(
                "{origin}: /{PATH} is record format {}; this pi-burn reads format {FORMAT}",
                r.record
            );
        }
        let at = format!("{origin}: /{PATH}");
        check_count(r.uefi.len(), MAX_SETTINGS, "UEFI settings", &at)?;
        check_count(r.config_txt.len(), MAX_EDITS, "config.txt edits", &at)?;
        Ok(r)
    }

    /// Differences between the record's table and the one found.
    pub fn check_table(&self, found: &FoundTable, label: &str) -> Vec<String> {
        self.table.check(found, label)
    }

    /// Differences between the recorded files and `seen` (path -> size, SHA-256), the record
    /// itself left out. `found` names where `seen` comes from ("found" on the card, "the
    /// firmware gives").
    pub fn check_files(
        &self,
        seen: &BTreeMap<String, (u64, Sha256Digest)>,
        found: &str,
    ) -> Vec<String> {
        check_files(&self.files, seen, found)
    }

    /// One-line summary for listings.
    pub fn summary(&self) -> String {
        use crate::util::text::printable;
        format!(
            "{}{} {}",
            self.node
                .as_ref()
                .map(|n| format!("{}: ", printable(n)))
                .unwrap_or_default(),
            printable(&self.board),
            printable(&self.firmware.version)
        )
    }
}

/// Adds the record of the card to `files` (an error when the firmware has a file of that name).
pub fn add_to(files: &mut FileSet, rec: &CardRecord) -> Result<()> {
    if files.get(PATH).is_some() {
        bail!("the firmware already has a /{PATH}: pi-burn keeps its card record there");
    }
    let bytes = rec.to_bytes();
    if bytes.len() as u64 > MAX_BYTES {
        bail!(
            "the card's record of {} files would be {} bytes, more than pi-burn reads back ({MAX_BYTES}): the firmware has too many files",
            rec.files.len(),
            bytes.len()
        );
    }
    files.add_file(PATH, bytes, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_in_the_nix_store_is_recorded_by_its_own_name() {
        for (path, name) in [
            (
                "/nix/store/71knqa5zs8jb53pm9m1c5cgqaycqc3wr-test-manifest.toml",
                "test-manifest.toml",
            ),
            ("fixtures/test-manifest.toml", "test-manifest.toml"),
            // Not a store hash: 'e' is not a Nix base-32 digit; too short; nothing after it.
            (
                "/x/71knqa5zs8jb53pm9m1c5cgqaycqc3we-m.toml",
                "71knqa5zs8jb53pm9m1c5cgqaycqc3we-m.toml",
            ),
            ("/x/71knqa5zs8jb-m.toml", "71knqa5zs8jb-m.toml"),
            (
                "/x/71knqa5zs8jb53pm9m1c5cgqaycqc3wr-",
                "71knqa5zs8jb53pm9m1c5cgqaycqc3wr-",
            ),
        ] {
            assert_eq!(manifest_name(path), name, "{path}");
        }
    }

    fn sample() -> CardRecord {
        CardRecord {
            record: FORMAT,
            made_by: "pi-burn 0.1.0".into(),
            node: Some("pi-beta".into()),
            board: "rpi4".into(),
            seed: None,
            firmware: RecFirmware {
                version: "v1.50".into(),
                zip_sha256: "00".repeat(32),
                nar_sha256: "sha256-x".into(),
                start4: Some(crate::firmware::start4::Build {
                    date: "2025-11-19".into(),
                    version: Some("4b5fe7b7e1e2c1a7 (clean)".into()),
                }),
            },
            table: RecTable {
                kind: "gpt".into(),
                sector_size: 512,
                partition: 1,
                first_lba: 2048,
                last_lba: 1050623,
                part_type: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".into(),
                name: "disk-sdcard-FIRMWARE".into(),
                label: "FIRMWARE".into(),
                disk_bytes: 514 << 20,
                partition_guid: None,
                ssd: None,
            },
            uefi: vec![RecSetting {
                name: "Timeout".into(),
                guid: "8BE4DF61-93CA-11D2-AA0D-00E098032B8C".into(),
                value: Value::Num(2),
                from: "--set".into(),
            }],
            config_txt: vec![],
            store: Some(RecStore {
                file: STORE_FILE.into(),
                offset: 0x3b0000,
                len: 0x20000,
                outside_sha256: "11".repeat(32),
                variables: vec![RecVar {
                    name: "Timeout".into(),
                    guid: "8BE4DF61-93CA-11D2-AA0D-00E098032B8C".into(),
                    attributes: 7,
                    bytes: 2,
                    data: Some("0200".into()),
                    sha256: Sha256Digest::of(&[2, 0]).hex(),
                }],
            }),
            manifest: None,
            files: vec![RecFile {
                path: "config.txt".into(),
                bytes: 3,
                sha256: Sha256Digest::of(b"a=1").hex(),
            }],
        }
    }

    /// The record's bytes are a format other tools and older cards depend on: a fixture pins
    /// them, named by the format version, so a change fails here until the version and the
    /// fixture move together (PI_BURN_UPDATE_FIXTURES=1 writes the fixture anew).
    #[test]
    fn the_record_format_is_pinned_by_a_fixture_of_its_version() {
        let path = format!(
            "{}/fixtures/formats/card-record-v{FORMAT}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = sample().to_bytes();
        if std::env::var("PI_BURN_UPDATE_FIXTURES").as_deref() == Ok("1") {
            std::fs::write(&path, &bytes).unwrap();
        }
        let pinned = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("{path}: {e}: a new record format needs its fixture (PI_BURN_UPDATE_FIXTURES=1)")
        });
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&pinned),
            "the record's bytes changed: bump FORMAT and add its fixture"
        );
        assert_eq!(CardRecord::parse(&pinned, "fixture").unwrap(), sample());
    }

    #[test]
    fn a_record_larger_than_the_reader_takes_is_refused_when_written() {
        // Regression (issue 24): past about 8,000 files the record outgrew the reader's limit.
        let mut r = sample();
        let f = r.files[0].clone();
        r.files = (0..200_000)
            .map(|i| RecFile {
                path: format!("d/{i:08}.bin"),
                ..f.clone()
            })
            .collect();
        assert!(r.to_bytes().len() as u64 > MAX_BYTES);
        let mut files = FileSet::new();
        let e = add_to(&mut files, &r).unwrap_err().to_string();
        assert!(e.contains("too many files"), "{e}");
        r.files.truncate(20_000);
        add_to(&mut files, &r).unwrap();
    }

    #[test]
    fn round_trips_and_refuses_what_is_not_a_record() {
        let r = sample();
        assert_eq!(CardRecord::parse(&r.to_bytes(), "t").unwrap(), r);
        let text = String::from_utf8(r.to_bytes()).unwrap();
        for (bad, why) in [
            (b"\xff\xfe garbage".to_vec(), "not a pi-burn card record"),
            (b"{}".to_vec(), "not a pi-burn card record"),
            (b"[1,2,3]".to_vec(), "not a pi-burn card record"),
            (
                text.replace("\"record\": 2", "\"record\": 3").into_bytes(),
                "format 3",
            ),
            (
                text.replace("\"board\"", "\"extra\": 1, \"board\"")
                    .into_bytes(),
                "not a pi-burn card record",
            ),
            (
                text.replace("\"bytes\": 3", "\"bytes\": -3").into_bytes(),
                "not a pi-burn card record",
            ),
            (
                text.replace("\"bytes\": 3", "\"bytes\": 1e400")
                    .into_bytes(),
                "not a pi-burn card record",
            ),
            (
                "[".repeat(100_000).into_bytes(),
                "not a pi-burn card record",
            ),
        ] {
            let e = format!("{:#}", CardRecord::parse(&bad, "t").unwrap_err());
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn files_are_checked_by_size_and_hash_both_ways() {
        let r = sample();
        let mut seen = BTreeMap::new();
        seen.insert("config.txt".to_string(), (3, Sha256Digest::of(b"a=1")));
        seen.insert(PATH.to_string(), (10, Sha256Digest::of(b"x")));
        assert!(
            r.check_files(&seen, "found").is_empty(),
            "the record itself is left out"
        );
        seen.insert("config.txt".to_string(), (3, Sha256Digest::of(b"a=2")));
        seen.insert("new.txt".to_string(), (1, Sha256Digest::of(b"n")));
        let out = r.check_files(&seen, "found");
        assert!(out[0].starts_with("/config.txt: changed"), "{out:?}");
        assert!(
            out[1].contains("/new.txt: on the card but not in its record"),
            "{out:?}"
        );
        seen.remove("config.txt");
        assert!(r.check_files(&seen, "found")[0].contains("missing"));
    }
}
