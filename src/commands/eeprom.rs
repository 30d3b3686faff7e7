//! `pi-burn eeprom`: the EEPROM bootloader update card, as an image file or on a card.

use super::{Global, Outcome};
use crate::cli::EepromArgs;
use crate::job::eeprom::EepromJob;
use anyhow::Result;

pub fn run(a: &EepromArgs, g: &Global) -> Result<Outcome> {
    let job = EepromJob::from_args(a)?;
    let target = job.target.claim(job.device.allow())?;
    let files = job.obtain(g.progress())?;
    let b = job.build(&files, &target)?;
    if let Some(w) = job.older_than_default(b.record.mfg_ver) {
        g.progress().notice(&w);
    }
    super::burn::burn(&target, &job.device, job.burn(&target, b), g)
}
