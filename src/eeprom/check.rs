//! An EEPROM card checked against its record with what the card itself shows: its table and
//! every file; pieeprom.bin's chain, its board and its bootconf.txt against the record's;
//! pieeprom.sig (and vl805.sig) against the files they sign for recovery.bin. That the files
//! are the release's is the caller's to check (the manifest's pins, the cache).

use super::record::EepromRecord;
use super::{parse_sig, EepromImage, Soc};
use crate::disk::cardread::{read_card, CardContents};
use crate::firmware::digest::Sha256Digest;
use crate::util::text::printable;
use anyhow::Result;
use std::io::{Read, Seek};

/// What checking an EEPROM card found.
#[derive(Debug, Clone)]
pub struct EepromCheck {
    pub record: EepromRecord,
    /// Differences (exit 3).
    pub problems: Vec<String>,
    /// Claims nothing checked.
    pub unchecked: Vec<String>,
    /// What was checked beyond the card (for the summary).
    pub checked: Vec<String>,
    pub card: CardContents,
}

const KEEP: &[(&str, u64)] = &[
    ("pieeprom.bin", 4 << 20),
    ("pieeprom.sig", 4096),
    ("vl805.sig", 4096),
];

/// Reads the card and checks it against `record`.
pub fn check<R: Read + Seek>(
    disk: &mut R,
    size: u64,
    origin: &str,
    record: EepromRecord,
) -> Result<EepromCheck> {
    let card = read_card(disk, size, KEEP, origin)?;
    let mut c = EepromCheck {
        problems: card.table_problems.clone(),
        unchecked: vec![],
        checked: vec![],
        record,
        card,
    };
    let t = c.record.table.check(&c.card.table, &c.card.label);
    c.problems.extend(t);
    // A used card: recovery.bin renames itself recovery.000 (RECOVERY.000 on FAT) once it has
    // updated the EEPROM, so that it does not run again at the next boot. The same file under
    // that name is the card's life, not damage: it is checked as recovery.bin.
    let used = c
        .card
        .files
        .keys()
        .find(|k| k.eq_ignore_ascii_case("recovery.000"))
        .cloned();
    let recorded = c.record.files.iter().find(|f| f.path == "recovery.bin");
    if let (false, Some(used), Some(r)) =
        (c.card.files.contains_key("recovery.bin"), used, recorded)
    {
        if let Some((bytes, sha)) = c.card.files.get(&used).cloned() {
            if sha.hex() == r.sha256 && bytes == r.bytes {
                c.card.files.remove(&used);
                c.card.files.insert("recovery.bin".into(), (bytes, sha));
                c.checked.push(format!(
                    "the card was used: recovery.bin renamed itself {used} after updating a board's EEPROM; to use the card again, rename it back (with mtools: mren -i {origin}@@{} ::/{used} ::/recovery.bin)",
                    c.card
                        .table
                        .partitions
                        .first()
                        .map_or(1 << 20, |p| p.first_lba * c.card.table.sector_size)
                ));
            }
        }
    }
    let seen = c.card.files.clone();
    let f = crate::disk::record::check_files(&c.record.files, &seen, "found");
    c.problems.extend(f);
    c.check_pieeprom();
    c.check_sigs();
    Ok(c)
}

impl EepromCheck {
    fn check_pieeprom(&mut self) {
        let Some(bytes) = self.card.kept.get("pieeprom.bin").cloned() else {
            return;
        };
        let img = match EepromImage::parse(bytes, "/pieeprom.bin") {
            Ok(i) => i,
            Err(e) => {
                self.problems.push(format!("{e:#}"));
                return;
            }
        };
        let board = self.record.board.clone();
        if let Some(soc) = Soc::of_board(&board) {
            if let Err(e) = img.check_soc(soc, "/pieeprom.bin") {
                self.problems.push(format!("{e:#}"));
            }
        }
        match img.file("bootconf.txt") {
            Some(b) if b == self.record.bootconf_txt.as_bytes() => {}
            Some(_) => self
                .problems
                .push("/pieeprom.bin: its bootconf.txt is not the one the record lists".into()),
            None => self
                .problems
                .push("/pieeprom.bin has no bootconf.txt in its first partition".into()),
        }
        // Every property the record names is set so in bootconf.txt.
        for p in &self.record.bootconf {
            let line = format!("{}={}", p.key, p.value);
            if !self.record.bootconf_txt.lines().any(|l| l.trim() == line) {
                self.problems.push(format!(
                    "the record says {} (from {}), but the recorded bootconf.txt does not set it",
                    printable(&line),
                    printable(&p.from)
                ));
            }
        }
        if self.record.mfg_ver.is_some() && img.mfg_ver() != self.record.mfg_ver {
            self.problems.push(format!(
                "/pieeprom.bin's MFG_VER is {:?}, the record says {:?}",
                img.mfg_ver(),
                self.record.mfg_ver
            ));
        }
        if img.build_timestamp() != self.record.build_timestamp {
            self.problems.push(format!(
                "/pieeprom.bin's BUILD_TIMESTAMP is {:?}, the record says {:?}",
                img.build_timestamp(),
                self.record.build_timestamp
            ));
        }
    }

    /// A .sig's first line against its file's SHA-256 on the card.
    fn sig_names(&mut self, sig: &str, file: &str) -> Option<(u64, u32)> {
        let text = self.card.kept.get(sig)?;
        let Ok(text) = std::str::from_utf8(text) else {
            self.problems.push(format!("/{sig} is not text"));
            return None;
        };
        let first = text.lines().next().unwrap_or_default().trim().to_string();
        if let Some((_, sha)) = self.card.files.get(file) {
            if first != sha.hex() {
                self.problems.push(format!(
                    "/{sig} names sha256 {}, /{file} is {sha}: recovery.bin would refuse it",
                    printable(&first)
                ));
            }
        }
        if sig == "pieeprom.sig" {
            match parse_sig(text) {
                Ok((_, ts, soc)) => return Some((ts, soc)),
                Err(e) => self.problems.push(format!("/{sig}: {e}")),
            }
        }
        None
    }

    fn check_sigs(&mut self) {
        if let Some((ts, soc)) = self.sig_names("pieeprom.sig", "pieeprom.bin") {
            if ts != self.record.ts {
                self.problems.push(format!(
                    "/pieeprom.sig says ts: {ts}, the record {}",
                    self.record.ts
                ));
            }
            let want = Soc::of_board(&self.record.board).map(Soc::number);
            if want.is_some_and(|w| w != soc) {
                self.problems.push(format!(
                    "/pieeprom.sig says target-soc: {soc}, but the card is for {}",
                    printable(&self.record.board)
                ));
            }
        }
        if self.card.files.contains_key("vl805.bin") {
            self.sig_names("vl805.sig", "vl805.bin");
        }
    }

    /// The SHA-256 of a file on the card.
    pub fn sha_of(&self, path: &str) -> Option<Sha256Digest> {
        self.card.files.get(path).map(|(_, s)| *s)
    }
}
