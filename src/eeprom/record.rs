//! An EEPROM card's record, `/pi-burn.json` as on a firmware card: the board, the release and
//! its pinned pieeprom's hash, every bootconf.txt property set with where it came from, the
//! resulting bootconf.txt, and every file as written. Its bytes depend only on the inputs.

use crate::disk::record::{
    check_count, RecFile, RecTable, MAX_BOOTCONF, MAX_BYTES, MAX_PROPERTIES, PATH,
};
use crate::firmware::configtxt::EditApplied;
use crate::firmware::fileset::FileSet;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

const FORMAT: u32 = 1;
/// What the record's `card` field says.
pub const KIND: &str = "eeprom";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EepromRecord {
    pub record: u32,
    /// "eeprom": tells this record from a firmware card's.
    pub card: String,
    pub made_by: String,
    pub node: Option<String>,
    pub board: String,
    /// The bootloader release (its date).
    pub release: String,
    /// The bootloader's BUILD_TIMESTAMP.
    pub build_timestamp: Option<u64>,
    /// The image's `MFG_VER:` (boards whose minimum bootloader version is higher do not boot
    /// it reliably).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfg_ver: Option<u32>,
    /// The release's pieeprom file as pinned, before bootconf.txt was replaced.
    pub release_pieeprom_sha256: String,
    pub bootconf: Vec<RecProperty>,
    /// bootconf.txt as it is in pieeprom.bin.
    pub bootconf_txt: String,
    /// pieeprom.sig's `ts:`.
    pub ts: u64,
    pub table: RecTable,
    pub files: Vec<RecFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecProperty {
    pub key: String,
    pub value: String,
    pub from: String,
    /// unchanged, replaced or added.
    pub change: String,
}

impl RecProperty {
    pub fn of(a: &EditApplied) -> Self {
        RecProperty {
            key: a.key.clone(),
            value: a.value.clone(),
            from: a.from.clone(),
            change: serde_json::to_value(a.change)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        }
    }
}

impl EepromRecord {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(self).expect("a record serialises");
        b.push(b'\n');
        b
    }

    /// Whether `bytes` are an EEPROM card's record (its `card` field), before parsing it.
    pub fn is_one(bytes: &[u8]) -> bool {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .is_some_and(|v| v.get("card").and_then(|c| c.as_str()) == Some(KIND))
    }

    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self> {
        let r: EepromRecord = serde_json::from_slice(bytes)
            .with_context(|| format!("{origin}: /{PATH} is not a pi-burn EEPROM card record"))?;
        if r.record != FORMAT || r.card != KIND {
            bail!(
                "{origin}: /{PATH} is EEPROM record format {}; this pi-burn reads format {FORMAT}",
                r.record
            );
        }
        let at = format!("{origin}: /{PATH}");
        check_count(r.bootconf.len(), MAX_PROPERTIES, "bootconf properties", &at)?;
        check_count(
            r.bootconf_txt.len(),
            MAX_BOOTCONF,
            "bytes of bootconf.txt",
            &at,
        )?;
        Ok(r)
    }

    /// One line for listings: "rpi4 bootloader 2026-05-17, BOOT_ORDER=0xf41".
    pub fn summary(&self) -> String {
        use crate::util::text::printable;
        let set: Vec<String> = self
            .bootconf
            .iter()
            .map(|p| format!("{}={}", printable(&p.key), printable(&p.value)))
            .collect();
        format!(
            "{}{} bootloader {}{}",
            self.node
                .as_ref()
                .map(|n| format!("{}: ", printable(n)))
                .unwrap_or_default(),
            printable(&self.board),
            printable(&self.release),
            if set.is_empty() {
                String::new()
            } else {
                format!(", {}", set.join(" "))
            }
        )
    }

    /// Adds the record to `files`.
    pub fn add_to(&self, files: &mut FileSet) -> Result<()> {
        let bytes = self.to_bytes();
        if bytes.len() as u64 > MAX_BYTES {
            bail!("the EEPROM card's record would be {} bytes", bytes.len());
        }
        files.add_file(PATH, bytes, false)
    }

    /// The files of `set`, hashed, for the record.
    pub fn files_of(set: &FileSet) -> Vec<RecFile> {
        RecFile::all(set)
    }
}
