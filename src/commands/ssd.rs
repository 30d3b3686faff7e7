//! `pi-burn ssd --node NAME`: the node's USB SSD gets the GPT its disko config describes.

use super::prompt::{confirm, describe};
use super::{load_disko, usage, Global};
use crate::blockdev::sysfs::{self, SysTree};
use crate::blockdev::{blockers, inspect_whole_disk, resolve, Allow};
use crate::cli::SsdArgs;
use crate::disk::card::{build_ssd, PARTITION_WIPE};
use crate::disk::geometry::{gpt_type_code, DiskPlan, PartType};
use crate::disk::verify::Mismatch;
use crate::error::Refused;
use crate::report::{Report, Target};
use crate::ssd::{choose_disk, plan, ConfigSource, DiskoDisk};
use crate::util::units::human;
use crate::write::device::burn;
use crate::write::image::check_replaceable;
use anyhow::{bail, Context, Result};
use std::path::Path;

fn hybrid_text(plan: &DiskPlan, disk: &DiskoDisk) -> String {
    let Some(entries) = &plan.hybrid_mbr else {
        return String::new();
    };
    let mut s = format!(
        "  hybrid MBR ({}):\n",
        if disk.efi_gpt_partition_first {
            "0xEE entry first"
        } else {
            "0xEE entry last"
        }
    );
    for (i, e) in entries.iter().enumerate() {
        s.push_str(&format!(
            "{:>3} {:>13} {:>13}  0x{:02x}{}\n",
            i + 1,
            e.first_lba,
            e.first_lba as u64 + e.sectors as u64 - 1,
            e.mbr_type,
            if e.bootable { "  bootable" } else { "" }
        ));
    }
    s
}

fn table_text(plan: &DiskPlan) -> String {
    let mut s = String::from("  #  start sector    end sector        size  type  name\n");
    for p in &plan.partitions {
        let code = match p.part_type {
            PartType::Gpt(g) => gpt_type_code(&g)
                .map(str::to_string)
                .unwrap_or_else(|| g.to_string().to_uppercase()),
            PartType::Mbr(t) => format!("0x{t:02x}"),
        };
        s.push_str(&format!(
            "{:>3} {:>13} {:>13} {:>11}  {code}  {}\n",
            p.number,
            p.first_lba,
            p.last_lba,
            human(p.sectors() * plan.sector_size),
            if p.attributes != 0 {
                format!("{}  attributes 0x{:016x}", p.name, p.attributes)
            } else {
                p.name.clone()
            }
        ));
    }
    s
}

/// Candidate disks, for an error when the configured device is not here.
fn candidates(t: &SysTree) -> String {
    let mut out = vec![];
    for dev in sysfs::list_disks(t) {
        if let Ok(d) = sysfs::inspect(t, dev) {
            if blockers(t, &d, Allow::default())
                .map(|b| b.is_empty())
                .unwrap_or(false)
            {
                let model = [d.vendor.as_deref(), d.model.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                out.push(format!(
                    "/dev/{} ({}, {}, {})",
                    d.name,
                    if model.is_empty() {
                        "unknown model"
                    } else {
                        &model
                    },
                    human(d.size),
                    d.transport
                ));
            }
        }
    }
    if out.is_empty() {
        "no disk here is free to write".into()
    } else {
        format!("candidates: {}", out.join(", "))
    }
}

pub fn run(a: &SsdArgs, g: &Global) -> Result<()> {
    let cfg = load_disko(&a.node, &a.config)?;
    match &cfg.source {
        ConfigSource::BuiltinDefault => g.progress.notice(&format!(
            "notice: --layout default: {} gets the cluster's documented layout (BOOT 1G EF00 vfat /boot; zfs 100% for pool rpool), not a config file",
            a.node,
        )),
        s => g.progress.phase(&format!("read {}", s.describe())),
    }
    let disk = choose_disk(
        &cfg.devices,
        a.disk.as_deref(),
        false,
        &cfg.source.describe(),
    )?;
    let seed = a
        .seed
        .clone()
        .unwrap_or_else(|| format!("{}/{}", a.node, disk.name));
    let timestamp = super::timestamp(None)?;

    if let Some(image) = &a.image {
        check_replaceable(image, a.force)?;
        let size = a.size.expect("clap requires --size").0;
        let ss = a.sector_size.map_or(512, |s| s.0);
        if !size.is_multiple_of(ss) {
            bail!(usage(format!(
                "--size: {size} is not a multiple of the {ss}-byte sector size"
            )));
        }
        let plan = plan(&disk, size, ss, &seed)?;
        if !g.quiet || a.device_opts.dry_run {
            eprint!(
                "{} disk '{}' on {}, {}:\n{}",
                a.node,
                disk.name,
                image.display(),
                human(size),
                table_text(&plan)
            );
            eprint!("{}", hybrid_text(&plan, &disk));
        }
        let (img, formatted, left) = build_ssd(&plan, &disk, !a.no_format, &seed, timestamp)?;
        for l in &left {
            g.progress.notice(&format!("notice: {l}"));
        }
        let mut report = Report::new(
            Target {
                kind: "image",
                path: image.display().to_string(),
                size,
            },
            &plan,
        );
        report.filesystems = formatted;
        if a.device_opts.dry_run {
            g.progress.phase("dry run: nothing was written");
            if g.json {
                println!("{}", report.to_json()?);
            }
            return Ok(());
        }
        let (stats, bmap) =
            crate::disk::bmap::write_image_and_map(image, &img, g.progress.as_ref())?;
        g.progress
            .phase(&format!("block map in {}", bmap.display()));
        report.bytes_written = Some(stats.bytes_written);
        finish(
            a,
            g,
            &report,
            &image.display().to_string(),
            &cfg.source,
            &disk,
        )
    } else {
        let t = SysTree::system();
        let dev_path = match (&a.device, &disk.device) {
            (Some(d), _) => d.clone(),
            (None, Some(cfg_dev)) if Path::new(cfg_dev).exists() => cfg_dev.into(),
            (None, Some(cfg_dev)) => bail!(
                "the configured device {cfg_dev} of disk '{}' is not attached here; {}; name the disk: pi-burn ssd --node {} /dev/sdX",
                disk.name,
                candidates(&t),
                a.node
            ),
            (None, None) => bail!("disk '{}' of {}'s config names no device; {}; name the disk: pi-burn ssd --node {} /dev/sdX", disk.name, a.node, candidates(&t), a.node),
        };
        if a.sector_size.is_some() || a.size.is_some() {
            bail!(usage("--size and --sector-size are for images; a device is used whole with its own sector size"));
        }
        let r = resolve(&dev_path)?;
        let d = inspect_whole_disk(&t, &r)?;
        let blocked = blockers(
            &t,
            &d,
            Allow {
                fixed_disk: a.device_opts.allow_fixed_disk,
            },
        )?;
        if !blocked.is_empty() {
            bail!(Refused(format!(
                "refusing {}: {}",
                r.canonical.display(),
                blocked.join("; ")
            )));
        }
        if let (Some(_), Some(cfg_dev)) = (&a.device, &disk.device) {
            let cfg_canon = std::fs::canonicalize(cfg_dev).ok();
            if !d.by_id.iter().any(|i| i == cfg_dev)
                && cfg_canon.as_deref() != Some(r.canonical.as_path())
            {
                g.progress.notice(&format!(
                    "warning: {} is not the configured {cfg_dev}: NixOS will look for its partitions by label, but update the config's device to one of: {}",
                    r.canonical.display(),
                    if d.by_id.is_empty() { "(no by-id names)".to_string() } else { d.by_id.join(", ") }
                ));
            }
        }
        let plan = plan(&disk, d.size, d.logical_sector_size, &seed)
            .with_context(|| r.canonical.display().to_string())?;
        let (img, formatted, left) = build_ssd(&plan, &disk, !a.no_format, &seed, timestamp)?;
        for l in &left {
            g.progress.notice(&format!("notice: {l}"));
        }
        if !g.quiet || a.device_opts.dry_run || !a.device_opts.yes {
            eprint!("{}", describe(&r, &d));
            eprint!(
                "will write:  {}'s disk '{}': GPT, {} each end of every partition wiped, {}\n{}",
                a.node,
                disk.name,
                human(PARTITION_WIPE),
                if formatted.is_empty() {
                    "nothing formatted".to_string()
                } else {
                    format!(
                        "FAT32 on partition {}",
                        formatted
                            .iter()
                            .map(|f| f.partition.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                table_text(&plan)
            );
            eprint!("{}", hybrid_text(&plan, &disk));
        }
        let mut report = Report::new(
            Target {
                kind: "device",
                path: r.canonical.display().to_string(),
                size: d.size,
            },
            &plan,
        );
        report.filesystems = formatted;
        if a.device_opts.dry_run {
            g.progress.phase("dry run: nothing was written");
            if g.json {
                println!("{}", report.to_json()?);
            }
            return Ok(());
        }
        confirm(&d, &r, a.device_opts.yes)?;
        let stats = burn(
            &t,
            &r,
            &d,
            &img,
            !a.device_opts.no_verify,
            g.progress.as_ref(),
        )?;
        report.bytes_written = Some(stats.bytes_written);
        report.bytes_read_back = (!a.device_opts.no_verify).then_some(stats.bytes_read_back);
        if !stats.mismatches.is_empty() {
            for m in &stats.mismatches {
                println!("{}: {m}", r.canonical.display());
            }
            return Err(Mismatch(stats.mismatches).into());
        }
        finish(
            a,
            g,
            &report,
            &r.canonical.display().to_string(),
            &cfg.source,
            &disk,
        )
    }
}

/// What the success line may claim: the table is disko's only when every rule pi-burn applied
/// is one disko's own script follows.
fn provenance(source: &ConfigSource, disk: &DiskoDisk) -> String {
    let from = source.describe();
    let hybrid = disk.partitions.iter().any(|p| p.hybrid.is_some());
    if hybrid && disk.efi_gpt_partition_first {
        format!("as disko's options describe them (from {from}); the hybrid MBR with the 0xEE entry first is what efiGptPartitionFirst means, not what disko's own script does (it fails there, see README)")
    } else {
        format!("as disko's gpt.nix and sgdisk make them (from {from})")
    }
}

fn finish(
    a: &SsdArgs,
    g: &Global,
    report: &Report,
    target: &str,
    source: &ConfigSource,
    disk: &DiskoDisk,
) -> Result<()> {
    if g.json {
        println!("{}", report.to_json()?);
    } else if !g.quiet {
        println!(
            "{target}: {} partitions written {}: {}",
            report.partitions.len(),
            provenance(source, disk),
            report
                .partitions
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        match source {
            // A JSON file may describe any machine's disks: no flake to name.
            ConfigSource::Json(_) => println!(
                "next: install with disko in format or mount mode (not destroy: see below)"
            ),
            _ => println!(
                "next: boot {node} from its SD card and install with disko in format or mount mode, e.g.\n  nixos-anywhere --flake {flake}#{node} --disko-mode format --target-host root@<address>",
                node = a.node,
                flake = a.config.flake.display()
            ),
        }
        println!(
            "warning: nixos-anywhere's default disko mode (destroy, format, mount) wipes every disk of the config again, this SSD and the SD card included: keep --disko-mode format or mount, or set disko.devices.disk.<name>.destroy = false"
        );
    }
    Ok(())
}
