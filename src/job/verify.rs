//! `verify` as a job: what the card is checked against, decided once from the flags. With no
//! firmware, setting or node named, a card that carries a record is checked against it (and
//! against every layout option given); otherwise against the firmware and layout named. An
//! SSD's ESP is checked against its record, a firmware named being its files' release.

use super::card::{load_disko, CardLayout, NodeRef};
use super::firmware::FirmwareJob;
use crate::cli::VerifyArgs;
use crate::cluster::Custom;
use crate::disk::geometry::{gpt_type, TableKind};
use crate::disk::record::CardRecord;
use crate::error::usage;
use anyhow::Result;
use std::path::PathBuf;

/// The layout options given, each compared with a card's record.
#[derive(Debug, Clone)]
pub struct RecordChecks {
    pub table: Option<TableKind>,
    pub label: Option<String>,
    pub sector_size: Option<u64>,
    pub partition_size: Option<u64>,
    pub partition_name: Option<String>,
    pub part_type: Option<String>,
    pub size: Option<u64>,
}

pub struct VerifyJob {
    pub device: Option<PathBuf>,
    pub image: Option<PathBuf>,
    /// Set when no setting or node is named: a record on the card is what it is checked
    /// against when no firmware is named either, or when the card is an SSD's ESP (then the
    /// record's files against the firmware named).
    pub by_record: Option<RecordChecks>,
    /// A firmware is named (a version, hash, zip or URL).
    pub firmware_named: bool,
    pub firmware: FirmwareJob,
    pub layout: CardLayout,
    pub custom: Custom,
    pub node: Option<NodeRef>,
}

impl VerifyJob {
    pub fn from_args(a: &VerifyArgs) -> Result<Self> {
        let firmware = FirmwareJob::from_args(&a.firmware)?;
        let l = &a.layout;
        let cfg = match &l.node {
            Some(n) => Some(load_disko(n, &l.config)?),
            None => None,
        };
        let layout = CardLayout::new(l, cfg.as_ref())?;
        let node = l.node.as_ref().map(|n| NodeRef {
            name: n.clone(),
            flake: l.config.flake.clone(),
        });
        let custom = super::custom::custom(
            &a.custom,
            firmware.board(),
            node.as_ref().map(|n| (n.flake.as_path(), n.name.as_str())),
        )?;
        let names_settings = super::custom::names_any(&a.custom) || node.is_some();
        let by_record = if !names_settings {
            Some(RecordChecks {
                table: l.table,
                label: l.label.clone(),
                sector_size: l.sector_size.map(|s| s.0),
                partition_size: l.partition_size.map(|s| s.0),
                partition_name: l.partition_name.clone(),
                part_type: match (&l.gpt_type, l.mbr_type) {
                    (Some(code), _) => Some(
                        gpt_type(code)
                            .map_err(|e| usage(format!("--gpt-type: {e:#}")))?
                            .to_string()
                            .to_uppercase(),
                    ),
                    (None, Some(b)) => Some(format!("0x{:02x}", b.0)),
                    (None, None) => None,
                },
                size: l.size.map(|s| s.0),
            })
        } else {
            None
        };
        Ok(VerifyJob {
            device: a.device.clone(),
            image: a.image.clone(),
            by_record,
            firmware_named: firmware.names_one(),
            firmware,
            layout,
            custom,
            node,
        })
    }
}

impl VerifyJob {
    /// The sector size to verify with: a device's own (an explicit, different
    /// `--sector-size`, or a `--size`, is a usage error), or an image's (`--size` must be the
    /// image's size).
    pub fn sector_size(&self, disk: Option<&crate::blockdev::Disk>, size: u64) -> Result<u64> {
        match disk {
            Some(d) => {
                if let Some(s) = self
                    .layout
                    .sector_size
                    .filter(|s| *s != d.info.logical_sector_size)
                {
                    return Err(usage(format!(
                        "--sector-size {s} does not match {}'s {}-byte sectors (a device's own sector size is always used)",
                        d.info.name, d.info.logical_sector_size
                    )));
                }
                if self.layout.size.is_some() {
                    return Err(usage("--size is for image files; a device is used whole"));
                }
                Ok(d.info.logical_sector_size)
            }
            None => {
                if let Some(want) = self.layout.size.filter(|s| *s != size) {
                    return Err(crate::error::Mismatch(vec![format!(
                        "image size: expected {want}, found {size}"
                    )])
                    .into());
                }
                Ok(self.layout.sector_size.unwrap_or(512))
            }
        }
    }
}

impl RecordChecks {
    /// The options against a card's record (of a disk of `size` bytes), one line per
    /// difference.
    pub fn against(&self, rec: &CardRecord, size: u64) -> Vec<String> {
        let t = &rec.table;
        let mut out = vec![];
        let mut differs = |what: &str, want: String, got: String| {
            if want != got {
                out.push(format!(
                    "{what}: expected {want}, the card's record says {got}"
                ));
            }
        };
        if let Some(table) = self.table {
            differs("partition table", table.name().into(), t.kind.clone());
        }
        if let Some(label) = &self.label {
            differs(
                "filesystem label",
                format!("'{}'", label.to_ascii_uppercase()),
                format!("'{}'", t.label),
            );
        }
        if let Some(ss) = self.sector_size {
            differs("sector size", ss.to_string(), t.sector_size.to_string());
        }
        if let Some(p) = self.partition_size {
            // The record is read from the card: checked arithmetic.
            let got = t
                .last_lba
                .checked_sub(t.first_lba)
                .and_then(|n| n.checked_add(1))
                .and_then(|n| n.checked_mul(t.sector_size))
                .map_or("an impossible range".to_string(), |b| b.to_string());
            differs("partition size", p.to_string(), got);
        }
        if let Some(n) = &self.partition_name {
            differs("partition name", format!("'{n}'"), format!("'{}'", t.name));
        }
        if let Some(pt) = &self.part_type {
            differs("partition type", pt.clone(), t.part_type.clone());
        }
        if let Some(s) = self.size {
            // The message a firmware verify gives for the same difference.
            if s != size {
                out.push(format!("image size: expected {s}, found {size}"));
            }
        }
        out
    }
}
