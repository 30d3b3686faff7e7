//! `pi-burn verify`: read a card back and compare it with the firmware.

use super::{image_size, load_firmware, sd_layout, Global};
use crate::cli::VerifyArgs;
use crate::report::{Report, Target};
use crate::verify::{verify_card, Mismatch};
use anyhow::{bail, Context, Result};
use std::fs::File;

pub fn run(args: &VerifyArgs, g: &Global) -> Result<()> {
    let fw = load_firmware(&args.firmware, g)?;
    let layout = sd_layout(&args.layout, &fw)?;
    let path = &args.image;
    let meta = std::fs::metadata(path).with_context(|| format!("opening {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not an image file", path.display());
    }
    let size = meta.len();
    if args.layout.size.is_some() {
        let want = image_size(&args.layout, &layout)?;
        if want != size {
            return Err(
                Mismatch(vec![format!("image size: expected {want}, found {size}")]).into(),
            );
        }
    }
    let plan = layout.plan(size)?;
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    g.progress.phase(&format!("verifying {}", path.display()));
    let mismatches = verify_card(&mut f, &plan, 1, &fw.files, &args.layout.label)?;
    if g.json {
        let mut report = Report::new(
            Target {
                kind: "image",
                path: path.display().to_string(),
                size,
            },
            &plan,
        )
        .with_firmware(&fw);
        report.mismatches = Some(mismatches.clone());
        report.print_json()?;
    } else {
        for m in &mismatches {
            println!("{}: {m}", path.display());
        }
        if mismatches.is_empty() && !g.quiet {
            println!(
                "{}: OK: {} table and {} files match firmware {} {}",
                path.display(),
                plan.table.name(),
                fw.files.file_count(),
                fw.board,
                fw.version
            );
        }
    }
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(Mismatch(mismatches).into())
    }
}
