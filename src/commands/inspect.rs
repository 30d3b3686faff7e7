//! `pi-burn inspect`: what a pi-burn card is, from its record, and whether the card still
//! matches it: its table, every file, its variable store (what the firmware changed after
//! boot is named, not a difference), every claim the card can show; the release's files when
//! the release is in the cache. No zip needed.

use super::{Global, Outcome};
use crate::cli::InspectArgs;
use crate::disk::cardcheck::check;
use crate::firmware::manifest::Manifest;
use crate::job::target::ReadTarget;
use crate::media::{card_record, identify, Identity};
use anyhow::Result;

pub fn run(args: &InspectArgs, g: &Global) -> Result<Outcome> {
    let manifest = Manifest::load(args.manifest.as_deref())?;
    let mut t = ReadTarget::open(args.device.as_deref(), args.image.as_deref())?;
    let (size, path) = (t.size(), t.path().to_string());
    match identify(&mut t.file, size) {
        Identity::Eeprom(rec) => {
            let mut c = crate::eeprom::check::check(&mut t.file, size, &path, *rec)?;
            crate::job::eeprom::check_release(&mut c, &manifest);
            super::record::outcome_eeprom(&t.report, &c)
        }
        id => {
            let rec = card_record(id, &path)?;
            let mut c = check(&mut t.file, size, rec, &path)?;
            crate::job::inspect::check_firmware(&mut c, &manifest, g.progress());
            super::record::outcome(&t.report, &c)
        }
    }
}
