//! The `--json` report: what was (or should be) on the target.

use crate::disk::fat::FatInfo;
use crate::disk::geometry::{DiskPlan, PartType};
use crate::firmware::digest::Sha256Digest;
use crate::firmware::{Firmware, HashKind};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Report {
    pub target: Target,
    pub table: &'static str,
    pub sector_size: u64,
    pub disk_guid: Option<String>,
    pub partitions: Vec<PartitionReport>,
    pub filesystem: Option<FatInfo>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filesystems: Vec<crate::disk::card::Formatted>,
    pub firmware: Option<FirmwareReport>,
    pub files: Vec<FileReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uefi_settings: Vec<crate::firmware::uefivars::Applied>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config_txt: Vec<crate::firmware::configtxt::EditApplied>,
    pub bytes_written: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_read_back: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatches: Option<Vec<String>>,
    /// What the firmware changed on a card since it was burned (verify).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// The capacity probe of a device burn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<crate::write::probe::Probed>,
    /// An EEPROM card: the bootloader release and its bootconf.txt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eeprom: Option<EepromReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EepromReport {
    pub board: String,
    pub release: String,
    pub build_timestamp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfg_ver: Option<u32>,
    pub bootconf: Vec<crate::firmware::configtxt::EditApplied>,
    pub bootconf_txt: String,
}

/// The `target` object of every report: `{kind, path, size}`.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub kind: &'static str,
    pub path: String,
    pub size: u64,
}

impl Target {
    /// The target a disk of `size` bytes goes to.
    pub fn of(t: &crate::write::Target, size: u64) -> Self {
        Target {
            kind: match t {
                crate::write::Target::Image(_) => "image",
                crate::write::Target::Device(_) => "device",
            },
            path: t.path().display().to_string(),
            size,
        }
    }

    /// A claimed device.
    pub fn device(c: &crate::blockdev::Claimed) -> Self {
        Target {
            kind: "device",
            path: c.disk().path().display().to_string(),
            size: c.disk().info.size,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PartitionReport {
    pub number: u32,
    pub start_lba: u64,
    pub end_lba: u64,
    pub size: u64,
    #[serde(rename = "type")]
    pub part_type: String,
    pub name: String,
    pub guid: Option<String>,
    /// GPT attribute bits, as hex (absent when 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FirmwareReport {
    pub board: String,
    pub version: String,
    pub hash_kind: HashKind,
    pub hash: String,
    pub zip_sha256: String,
    pub nar_sha256: String,
    pub source: crate::firmware::Source,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

impl Report {
    pub fn new(target: Target, plan: &DiskPlan) -> Self {
        Report {
            target,
            table: plan.table.name(),
            sector_size: plan.sector_size,
            disk_guid: (!plan.disk_guid.is_nil())
                .then(|| plan.disk_guid.to_string().to_uppercase()),
            partitions: plan
                .partitions
                .iter()
                .map(|p| PartitionReport {
                    attributes: (p.attributes != 0).then(|| format!("0x{:016x}", p.attributes)),
                    number: p.number,
                    start_lba: p.first_lba,
                    end_lba: p.last_lba,
                    size: p.sectors() * plan.sector_size,
                    part_type: match p.part_type {
                        PartType::Gpt(g) => g.to_string().to_uppercase(),
                        PartType::Mbr(t) => format!("0x{t:02x}"),
                    },
                    name: p.name.clone(),
                    guid: (!p.guid.is_nil()).then(|| p.guid.to_string().to_uppercase()),
                })
                .collect(),
            filesystem: None,
            filesystems: vec![],
            firmware: None,
            files: vec![],
            uefi_settings: vec![],
            config_txt: vec![],
            bytes_written: None,
            bytes_read_back: None,
            mismatches: None,
            changes: vec![],
            probe: None,
            eeprom: None,
        }
    }

    /// The firmware and every file with its SHA-256 (hashed here).
    pub fn with_firmware(self, fw: &Firmware) -> Self {
        let files = fw
            .files
            .files()
            .map(|(path, data)| FileReport {
                path: path.to_string(),
                size: data.len() as u64,
                sha256: Sha256Digest::of(data).hex(),
            })
            .collect();
        self.with_firmware_files(fw, files)
    }

    /// The firmware, with its files as already hashed (a card's record).
    pub fn with_firmware_files(mut self, fw: &Firmware, files: Vec<FileReport>) -> Self {
        let (hash_kind, hash) = fw.hash();
        self.firmware = Some(FirmwareReport {
            board: fw.board.clone(),
            version: fw.version.clone(),
            hash_kind,
            hash,
            zip_sha256: fw.zip_sha256.hex(),
            nar_sha256: fw.nar_sha256.sri(),
            source: fw.source,
        });
        self.files = files;
        self
    }

    /// The report as pretty JSON (commands print it).
    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}
