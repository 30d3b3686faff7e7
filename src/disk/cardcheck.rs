//! A pi-burn card checked against its record, with what the card itself can show: its table
//! and every file; RPI_EFI.fd byte for byte outside the variable region the firmware rewrites,
//! and inside it every variable against the store as burned (a booted card names what the
//! firmware changed, and is intact); each claim of the record (settings, config.txt edits, the
//! GUIDs its seed gives, start4.elf's build) against the card. What the card cannot show (that
//! the files are the named release's) is left to the caller, or named as unchecked.

use crate::disk::cardread::{read_card, CardContents};
use crate::disk::record::{CardRecord, RecStore, STORE_FILE};
use crate::firmware::digest::Sha256Digest;
use crate::firmware::uefivars::{self, settings};
use crate::util::ids::{derive_u32, derive_uuid};
use crate::util::text::printable;
use anyhow::Result;
use std::io::{Read, Seek};

/// What checking a card against its record found.
#[derive(Debug, Clone)]
pub struct CardCheck {
    pub record: CardRecord,
    /// Differences from the record (exit 3).
    pub problems: Vec<String>,
    /// What changed on the card since it was burned, as the firmware changes it (its variable
    /// store after a boot): reported, not a difference.
    pub changes: Vec<String>,
    /// Claims of the record that nothing checked.
    pub unchecked: Vec<String>,
    /// The release every recorded file was found to come from (with the recorded settings and
    /// edits), and whence it was taken: "rpi4 v1.50 (the cached zip)".
    pub files_from: Option<String>,
    /// RPI_EFI.fd differs from the record only where the firmware rewrites its store.
    pub booted: bool,
    /// The card as read (files and the kept ones: RPI_EFI.fd, config.txt, start4.elf).
    pub card: CardContents,
}

/// Files kept whole for the checks, with their limits.
const KEEP: &[(&str, u64)] = &[
    (STORE_FILE, 64 << 20),
    ("config.txt", 1 << 20),
    ("start4.elf", 16 << 20),
];

/// Checks the card against `rec`, the record read from it ([`crate::media::card_record`]).
pub fn check<R: Read + Seek>(
    disk: &mut R,
    size: u64,
    rec: CardRecord,
    origin: &str,
) -> Result<CardCheck> {
    let card = read_card(disk, size, KEEP, origin)?;
    let mut c = CardCheck {
        record: rec,
        problems: card.table_problems.clone(),
        changes: vec![],
        unchecked: vec![],
        files_from: None,
        booted: false,
        card,
    };
    c.problems
        .extend(c.record.check_table(&c.card.table, &c.card.label));
    let mut seen = c.card.files.clone();
    if c.store_file_as_recorded() {
        // The file is the one the record lists: its store must be the one the record says
        // was burned (the record is not compared with itself).
        if let Some(fd) = c.card.kept.get(STORE_FILE).cloned() {
            c.compare_store(&fd, false);
        }
    } else if let Some(fd) = c.store_unchanged_outside() {
        // Only the region the firmware rewrites differs: the file is as burned, its store
        // is compared variable by variable.
        if let Some(f) = c.record.files.iter().find(|f| f.path == STORE_FILE) {
            if let Ok(d) = Sha256Digest::from_hex(&f.sha256) {
                seen.insert(STORE_FILE.into(), (f.bytes, d));
            }
        }
        c.booted = true;
        c.compare_store(&fd, true);
    }
    if c.record.table.ssd.is_some() {
        // An SSD's ESP is the OS's too: its boot loader's files (systemd-boot's EFI/ and
        // loader/, the kernels NixOS copies to EFI/nixos) are named, not differences.
        let os: Vec<String> = seen
            .keys()
            .filter(|p| is_os_boot_file(p) && !c.record.files.iter().any(|f| &f.path == *p))
            .cloned()
            .collect();
        if !os.is_empty() {
            c.changes.push(format!(
                "the OS's boot loader files beside the firmware ({} under EFI/ and loader/): {}",
                os.len(),
                crate::util::text::list_some(&os, 6)
            ));
            for p in &os {
                seen.remove(p);
            }
        }
    }
    let files = c.record.check_files(&seen, "found");
    c.problems.extend(files);
    c.check_settings();
    c.check_edits();
    c.check_ids();
    c.check_start4();
    Ok(c)
}

/// Whether `path` (on an SSD's ESP) is where an OS boot loader keeps its files: systemd-boot's
/// `EFI/` and `loader/` (NixOS puts kernels in `EFI/nixos`), matched without case as FAT does.
fn is_os_boot_file(path: &str) -> bool {
    let top = path.split('/').next().unwrap_or("");
    path.contains('/') && (top.eq_ignore_ascii_case("EFI") || top.eq_ignore_ascii_case("loader"))
}

/// "2" for a known setting's data, "4 bytes" otherwise.
fn shown(name: &str, guid: &str, data: Option<&[u8]>, bytes: u64) -> String {
    let def = settings::lookup(name, guid);
    match (def, data) {
        (Some(d), Some(data)) => match d.decode(data) {
            Some(v) => v.to_string(),
            None => format!("{bytes} bytes"),
        },
        _ => format!("{bytes} bytes"),
    }
}

impl CardCheck {
    /// Whether the card's RPI_EFI.fd is the one the record lists (size and SHA-256).
    fn store_file_as_recorded(&self) -> bool {
        let recorded = self.record.files.iter().find(|f| f.path == STORE_FILE);
        match (recorded, self.card.files.get(STORE_FILE)) {
            (Some(r), Some((bytes, sha))) => sha.hex() == r.sha256 && *bytes == r.bytes,
            _ => false,
        }
    }

    /// The card's RPI_EFI.fd when it differs from the record only inside the store's region.
    fn store_unchanged_outside(&self) -> Option<Vec<u8>> {
        let store = self.record.store.as_ref()?;
        let recorded = self.record.files.iter().find(|f| f.path == STORE_FILE)?;
        let fd = self.card.kept.get(STORE_FILE)?;
        let (bytes, sha) = self.card.files.get(STORE_FILE)?;
        if sha.hex() == recorded.sha256 && *bytes == recorded.bytes {
            return None;
        }
        unchanged_outside(store, fd, recorded.bytes).then(|| fd.clone())
    }

    /// The card's store against the store as burned: what the firmware changed (`booted`: the
    /// file changed inside the region it rewrites), or, when the file is the one recorded,
    /// every difference is the record's own (a problem).
    fn compare_store(&mut self, fd: &[u8], booted: bool) {
        let Some(store) = self.record.store.clone() else {
            return;
        };
        let found = match uefivars::snapshot(fd, &format!("/{STORE_FILE}")) {
            Ok(s) => s,
            Err(e) => {
                self.problems
                    .push(format!("its variable store is damaged: {e:#}"));
                return;
            }
        };
        if booted {
            diff_store(&store, &found, &mut self.changes);
            return;
        }
        let mut differs = vec![];
        diff_store(&store, &found, &mut differs);
        self.problems.extend(differs.into_iter().map(|d| {
            format!("the record's variable store is not the one in the card's /{STORE_FILE} (which is as the record lists it): {d}")
        }));
    }

    /// Every setting the record names, against the store it recorded: a record that says
    /// another value than it burned was changed.
    fn check_settings(&mut self) {
        let Some(store) = &self.record.store else {
            if !self.record.uefi.is_empty() {
                self.unchecked.push(format!(
                    "the UEFI settings ({}): the record holds no variable store to check them against",
                    self.record.uefi.len()
                ));
            }
            return;
        };
        for s in &self.record.uefi {
            let Some(def) = settings::lookup(&s.name, &s.guid) else {
                self.problems.push(format!(
                    "the record names UEFI {}, which no known firmware reads",
                    printable(&s.name)
                ));
                continue;
            };
            let want = match def.encode(&s.value) {
                Ok(bytes) => Sha256Digest::of(&bytes).hex(),
                Err(e) => {
                    self.problems.push(format!(
                        "the record's UEFI setting is not one the firmware accepts: {e:#}"
                    ));
                    continue;
                }
            };
            let burned = store
                .variables
                .iter()
                .find(|v| v.name == s.name && v.guid.eq_ignore_ascii_case(&s.guid));
            match burned {
                Some(v) if v.sha256 == want => {}
                Some(v) => self.problems.push(format!(
                    "the record says UEFI {} = {}, but the store it burned holds {}",
                    printable(&s.name),
                    printable(&s.value.to_string()),
                    shown(&v.name, &v.guid, v.bytes_of().as_deref(), v.bytes)
                )),
                None => self.problems.push(format!(
                    "the record says UEFI {} = {}, but the store it burned has no such variable",
                    printable(&s.name),
                    printable(&s.value.to_string())
                )),
            }
        }
    }

    /// Every config.txt edit the record names is in effect in the card's config.txt.
    fn check_edits(&mut self) {
        if self.record.config_txt.is_empty() {
            return;
        }
        let Some(text) = self
            .card
            .kept
            .get("config.txt")
            .and_then(|t| std::str::from_utf8(t).ok())
        else {
            self.problems.push(
                "the record names config.txt edits, but the card has no readable /config.txt"
                    .into(),
            );
            return;
        };
        for e in &self.record.config_txt {
            let edit = crate::firmware::configtxt::Edit {
                key: e.key.clone(),
                value: e.value.clone(),
                from: e.from.clone(),
            };
            let in_effect = crate::firmware::configtxt::apply(text, &[edit], "config.txt")
                .is_ok_and(|(_, a)| {
                    a.first().map(|a| a.change)
                        == Some(crate::firmware::configtxt::EditChange::Unchanged)
                });
            if !in_effect {
                self.problems.push(format!(
                    "the record says config.txt {}={}, which the card's /config.txt does not set",
                    printable(&e.key),
                    printable(&e.value)
                ));
            }
        }
    }

    /// The GUIDs and the FAT volume id the record's seed gives (its board, release, partition
    /// name and node, unless a seed is recorded): the record's claims checked by the card.
    fn check_ids(&mut self) {
        let r = &self.record;
        let node = r.node.as_deref();
        let seed = r.seed.clone().unwrap_or_else(|| {
            crate::disk::geometry::default_seed(&r.board, &r.firmware.version, &r.table.name, node)
        });
        // A card's ids come from names of its own; an SSD's from disko's partition names, as
        // for every partition of the disk (ssd/sgdisk.rs, job/ssd.rs build_ssd).
        let (part_key, volume_key, what) = match &r.table.ssd {
            None => (
                "partition-1".to_string(),
                "fat-volume-id".to_string(),
                "a card",
            ),
            Some(_) => (
                format!("partition-{}", r.table.name),
                format!("fat-volume-id-{}", r.table.name),
                "an SSD",
            ),
        };
        let t = &self.card.table;
        let mut wrong = vec![];
        let mut reguid = None;
        if t.table == crate::disk::geometry::TableKind::Gpt {
            if t.disk_guid != derive_uuid(&seed, "disk") {
                wrong.push("disk GUID");
            }
            let want = r
                .table
                .partition_guid
                .as_deref()
                .and_then(|g| uuid::Uuid::parse_str(g).ok())
                .unwrap_or_else(|| derive_uuid(&seed, &part_key));
            match t.partitions.iter().find(|p| p.number == 1).map(|p| p.guid) {
                Some(g) if g == want => {}
                // Everything else of the partition as recorded (checked by check_table): a new
                // GUID is what disko's install does to a card of the node's config.
                Some(g) if self.problems.is_empty() => reguid = Some((g, want)),
                _ => wrong.push("partition GUID"),
            }
        }
        if self.card.volume_id != derive_u32(&seed, &volume_key) {
            wrong.push("FAT volume id");
        }
        if let Some((g, want)) = reguid {
            self.changes.push(format!(
                "partition 1's GUID is {}, not the {} it was burned with (its name, type, attributes, bounds and files are as recorded): disko's install sets a new one on {what} of the node's config (sgdisk --partition-guid=1:R, disko lib/types/gpt.nix:289) unless the config pins it: uuid = \"{}\";",
                g.to_string().to_uppercase(),
                want.to_string().to_uppercase(),
                want.to_string().to_uppercase()
            ));
        }
        if !wrong.is_empty() {
            self.problems.push(format!(
                "the card's {} is not what the record's {} give: the record was changed, or the card was not made from it",
                wrong.join(", "),
                if r.seed.is_some() {
                    "seed".to_string()
                } else {
                    format!(
                        "board {}, release {}, partition name and node {}",
                        printable(&r.board),
                        printable(&r.firmware.version),
                        node.map(printable).unwrap_or_else(|| "(none)".into())
                    )
                }
            ));
        }
    }

    /// start4.elf's build, read from the card's file, against the record's.
    fn check_start4(&mut self) {
        let found = self
            .card
            .kept
            .get("start4.elf")
            .and_then(|e| crate::firmware::start4::build_of(e));
        if found != self.record.firmware.start4 {
            self.problems.push(format!(
                "the record says start4.elf was built {}, the card's was built {}",
                self.record
                    .firmware
                    .start4
                    .as_ref()
                    .map_or("(unknown)".to_string(), |b| printable(&b.date)),
                found.map_or("(unknown)".to_string(), |b| b.date)
            ));
        }
    }
}

/// Whether `found` is `whole_len` bytes and every byte outside the region `burned` names (the
/// one the firmware rewrites) is as burned.
fn unchanged_outside(burned: &RecStore, found: &[u8], whole_len: u64) -> bool {
    let (Ok(off), Ok(len)) = (usize::try_from(burned.offset), usize::try_from(burned.len)) else {
        return false;
    };
    found.len() as u64 == whole_len
        && uefivars::outside_digest(found, off, len).hex() == burned.outside_sha256
}

/// A firmware file `found` against the store `burned` describes: `None` when a byte outside the
/// region the firmware rewrites differs (or the length), an error when its store is damaged,
/// else what the firmware changed inside (empty: nothing).
pub fn store_diff(
    burned: &RecStore,
    found: &[u8],
    whole_len: u64,
) -> Option<Result<Vec<String>, String>> {
    if !unchanged_outside(burned, found, whole_len) {
        return None;
    }
    Some(match uefivars::snapshot(found, &format!("/{STORE_FILE}")) {
        Ok(s) => {
            let mut out = vec![];
            diff_store(burned, &s, &mut out);
            Ok(out)
        }
        Err(e) => Err(format!("its variable store is damaged: {e:#}")),
    })
}

/// The variables of `found` against the store as burned: changed, removed and added ones.
fn diff_store(burned: &RecStore, found: &uefivars::Snapshot, out: &mut Vec<String>) {
    for v in &burned.variables {
        let now = found
            .vars
            .iter()
            .find(|f| f.name == v.name && f.guid.to_string().eq_ignore_ascii_case(&v.guid));
        match now {
            None => out.push(format!(
                "UEFI {}: removed since the card was burned",
                printable(&v.name)
            )),
            Some(f) if Sha256Digest::of(&f.data).hex() == v.sha256 && f.attributes == v.attributes => {}
            Some(f) => out.push(format!(
                "UEFI {}: {} -> {} (changed on the card since it was burned: the firmware or its setup)",
                printable(&v.name),
                shown(&v.name, &v.guid, v.bytes_of().as_deref(), v.bytes),
                shown(&f.name, &f.guid.to_string(), Some(&f.data), f.data.len() as u64)
            )),
        }
    }
    let added: Vec<String> = found
        .vars
        .iter()
        .filter(|f| {
            !burned
                .variables
                .iter()
                .any(|v| v.name == f.name && f.guid.to_string().eq_ignore_ascii_case(&v.guid))
        })
        .map(|f| printable(&f.name))
        .collect();
    if !added.is_empty() {
        out.push(format!(
            "UEFI variables added by the firmware since the card was burned: {}",
            added.join(", ")
        ));
    }
}
