//! `pi-burn sdcard`: the UEFI firmware SD card, as an image file or on a block device.

use super::{Global, Outcome};
use crate::cli::SdcardArgs;
use crate::job::CardJob;
use anyhow::Result;

pub fn run(args: &SdcardArgs, g: &Global) -> Result<Outcome> {
    // Every check first: the options, then the target; then the firmware.
    let job = CardJob::from_args(args)?;
    for n in &job.notices {
        g.progress().notice(n);
    }
    let target = job.target.claim(job.device.allow())?;
    job.geometry(&target)?;
    let mut fw = job.firmware.obtain(g.progress())?;
    let card = job.build(&mut fw, &target, g.progress())?;
    super::burn::burn(
        &target,
        &job.device,
        card.burn(&fw, &target, &job.device),
        g,
    )
}
