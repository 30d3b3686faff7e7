//! `pi-burn ssd --node NAME`: the node's USB SSD gets the GPT its disko config describes.

use super::prompt::{describe, go_ahead, probe_line, probe_summary};
use super::Global;
use crate::cli::SsdArgs;
use crate::disk::card::PARTITION_WIPE;
use crate::disk::geometry::{gpt_type_code, DiskPlan, PartType};
use crate::job::ssd::{BuiltSsd, SsdJob};
use crate::report::Report;
use crate::ssd::{ConfigSource, DiskoDisk};
use crate::util::units::human;
use crate::write::Target;
use anyhow::Result;

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

/// The plan, on stderr: the device (or image), the table, what is formatted.
fn show_plan(job: &SsdJob, target: &Target, built: &BuiltSsd) {
    let plan = &built.plan;
    match target {
        Target::Image(p) => eprint!(
            "{} disk '{}' on {}, {} ({} bytes):\n{}",
            job.node,
            job.disk.name,
            p.display(),
            human(plan.size),
            plan.size,
            table_text(plan)
        ),
        Target::Device(c) => {
            eprint!("{}", describe(c.disk()));
            let d = &c.disk().info;
            eprint!(
                "{}",
                probe_line(d.size, d.logical_sector_size, job.device.probe)
            );
            eprint!(
                "will write:  {}'s disk '{}': GPT, {} each end of every partition wiped, {}\n{}",
                job.node,
                job.disk.name,
                human(PARTITION_WIPE),
                if built.formatted.is_empty() {
                    "nothing formatted".to_string()
                } else {
                    format!(
                        "FAT32 on partition {}",
                        built
                            .formatted
                            .iter()
                            .map(|f| f.partition.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                table_text(plan)
            );
        }
    }
    eprint!("{}", hybrid_text(plan, &job.disk));
}

/// An explicit device that is not the config's: NixOS finds partitions by label, but the
/// config should name this disk.
fn warn_other_device(job: &SsdJob, target: &Target, g: &Global) {
    let (Target::Device(c), Some(cfg_dev), crate::job::TargetSpec::Device(_)) =
        (target, &job.disk.device, &job.target)
    else {
        return;
    };
    let d = c.disk();
    let cfg_canon = std::fs::canonicalize(cfg_dev).ok();
    if !d.info.by_id.iter().any(|i| i == cfg_dev) && cfg_canon.as_deref() != Some(d.path()) {
        g.progress().notice(&format!(
            "warning: {} is not the configured {cfg_dev}: NixOS will look for its partitions by label, but update the config's device to one of: {}",
            d.path().display(),
            if d.info.by_id.is_empty() { "(no by-id names)".to_string() } else { d.info.by_id.join(", ") }
        ));
    }
}

pub fn run(a: &SsdArgs, g: &Global) -> Result<()> {
    let job = SsdJob::from_args(a)?;
    for n in &job.notices {
        g.progress().notice(n);
    }
    match &job.source {
        ConfigSource::BuiltinDefault => g.progress().notice(&format!(
            "notice: --layout default: {} gets the cluster's documented layout (BOOT 1G EF00 vfat /boot; zfs 100% for pool rpool), not a config file",
            job.node,
        )),
        s => g.progress().phase(&format!("read {}", s.describe())),
    }
    let target = job.target.claim(job.device.allow())?;
    warn_other_device(&job, &target, g);
    let built = job.build(&target)?;
    for l in &built.left {
        g.progress().notice(&format!("notice: {l}"));
    }
    let opts = &job.device;
    if !g.quiet || opts.dry_run || (target_is_device(&target) && !opts.yes) {
        show_plan(&job, &target, &built);
    }
    let mut report = Report::new(target.report(built.plan.size), &built.plan);
    report.filesystems = built.formatted.clone();
    if !go_ahead(&target, opts, &report, g)? {
        return Ok(());
    }
    super::deliver_reported(
        &built.img,
        &target,
        &job.write_options(&target),
        &mut report,
        g,
    )?;
    finish(&job, g, &report, &target.path().display().to_string())
}

fn target_is_device(t: &Target) -> bool {
    matches!(t, Target::Device(_))
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

fn finish(job: &SsdJob, g: &Global, report: &Report, target: &str) -> Result<()> {
    if g.json {
        println!("{}", report.to_json()?);
        return Ok(());
    }
    if g.quiet {
        return Ok(());
    }
    println!(
        "{target}: {} partitions written {}: {}",
        report.partitions.len(),
        provenance(&job.source, &job.disk),
        report
            .partitions
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if report.target.kind == "device" {
        println!(
            "{target}: {}",
            probe_summary(report.probe.as_ref()).trim_start_matches("; ")
        );
    }
    match &job.source {
        // A JSON file may describe any machine's disks: no flake to name.
        ConfigSource::Json(_) => {
            println!("next: install with disko in format or mount mode (not destroy: see below)")
        }
        _ => println!(
            "next: boot {node} from its SD card and install with disko in format or mount mode, e.g.\n  nixos-anywhere --flake {flake}#{node} --disko-mode format --target-host root@<address>",
            node = job.node,
            flake = job.flake.display()
        ),
    }
    println!(
        "warning: nixos-anywhere's default disko mode (destroy, format, mount) wipes every disk of the config again, this SSD and the SD card included: keep --disko-mode format or mount, or set disko.devices.disk.<name>.destroy = false"
    );
    Ok(())
}
