//! `pi-burn verify`: read a card or image back and compare it with the firmware.

use super::{
    apply_uefi, device_target, image_size, layout_for_device, load_firmware, sd_layout, Global,
};
use crate::blockdev::sys;
use crate::cli::VerifyArgs;
use crate::disk::verify::{verify_card, Mismatch};
use crate::report::{Report, Target};
use anyhow::{bail, Context, Result};
use std::fs::File;

pub fn run(args: &VerifyArgs, g: &Global) -> Result<()> {
    let mut fw = load_firmware(&args.firmware, g)?;
    let uefi = apply_uefi(&mut fw, &args.uefi, g)?;
    let (kind, path, size, layout, mut f) = match (&args.device, &args.image) {
        (Some(dev), _) => {
            let (_, r, d) = device_target(dev)?;
            let layout = layout_for_device(&args.layout, &fw, &d)?;
            let f = File::open(&r.canonical)
                .with_context(|| format!("opening {}", r.canonical.display()))?;
            let size = sys::size_bytes(&f)
                .with_context(|| format!("reading the size of {}", r.canonical.display()))?;
            // Read what is on the card, not what the page cache remembers.
            sys::drop_cache(&f);
            ("device", r.canonical.display().to_string(), size, layout, f)
        }
        (None, Some(path)) => {
            let layout = sd_layout(&args.layout, &fw)?;
            let meta =
                std::fs::metadata(path).with_context(|| format!("opening {}", path.display()))?;
            if !meta.is_file() {
                bail!(
                    "{} is not an image file (give a card as the positional DEVICE)",
                    path.display()
                );
            }
            let size = meta.len();
            if args.layout.size.is_some() {
                let want = image_size(&args.layout, &layout)?;
                if want != size {
                    return Err(Mismatch(vec![format!(
                        "image size: expected {want}, found {size}"
                    )])
                    .into());
                }
            }
            let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            ("image", path.display().to_string(), size, layout, f)
        }
        (None, None) => unreachable!("clap requires DEVICE or --image"),
    };
    let plan = layout.plan(size)?;
    g.progress.phase(&format!("verifying {path}"));
    let mismatches = verify_card(&mut f, &plan, 1, &fw.files, &args.layout.label)?;
    if g.json {
        let mut report = Report::new(
            Target {
                kind,
                path: path.clone(),
                size,
            },
            &plan,
        )
        .with_firmware(&fw);
        report.mismatches = Some(mismatches.clone());
        report.uefi_settings = uefi;
        println!("{}", report.to_json()?);
    } else {
        for m in &mismatches {
            println!("{path}: {m}");
        }
        if mismatches.is_empty() && !g.quiet {
            println!(
                "{path}: OK: {} table and {} files match firmware {} {}",
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
