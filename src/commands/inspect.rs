//! `pi-burn inspect`: what a pi-burn card is, from its record, and whether its table and every
//! file still match that record (no zip needed).

use super::Global;
use crate::cli::InspectArgs;
use crate::disk::cardread::check_record;
use crate::error::Mismatch;
use crate::job::target::ReadTarget;
use anyhow::Result;

pub fn run(args: &InspectArgs, g: &Global) -> Result<()> {
    let mut t = ReadTarget::open(args.device.as_deref(), args.image.as_deref())?;
    let (size, path) = (t.size(), t.path().to_string());
    let (rec, problems) = check_record(&mut t.file, size, &path)?;
    super::record::print(&t.report, &rec, &problems, g)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Mismatch(problems).into())
    }
}
