//! `pi-burn images --flake DIR --out DIR`: every node's SD card image and SSD image, each with
//! its block map, from the flake's hosts/ and pi-burn.toml, with one firmware download.

use super::{custom_for, customise, load_disko, load_firmware, usage, Global};
use crate::cli::{DiskoArgs, ImagesArgs, LayoutArgs, Table};
use crate::cluster::Custom;
use crate::disk::bmap::write_image_and_map;
use crate::disk::card::build_ssd;
use crate::firmware::digest::Sha256Digest;
use crate::firmware::Firmware;
use crate::ssd::{choose_disk, DiskoDisk};
use crate::util::units::{human, parse_size};
use crate::write::image::check_replaceable;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One node's inputs, all checked before the firmware is fetched or anything is written.
struct NodeJob {
    node: String,
    layout: LayoutArgs,
    /// The node's disko config, evaluated once.
    config: crate::ssd::NodeConfig,
    custom: Custom,
    ssd: DiskoDisk,
    ssd_size: u64,
    sd_path: PathBuf,
    ssd_path: PathBuf,
}

#[derive(Debug, Serialize)]
struct Row {
    node: String,
    kind: &'static str,
    image: String,
    bmap: String,
    size: u64,
    bytes_written: u64,
    /// SHA-256 of the block map, which holds the SHA-256 of every mapped range (the rest of
    /// the image is zeros): equal digests, equal images.
    bmap_sha256: String,
}

fn layout_args(flake: &Path, node: &str, eval: crate::cli::Eval) -> LayoutArgs {
    LayoutArgs {
        table: Table::Gpt,
        mbr_type: None,
        gpt_type: None,
        allow_unbootable_type: false,
        sector_size: None,
        size: None,
        partition_size: None,
        partition_name: None,
        label: "FIRMWARE".into(),
        seed: None,
        node: Some(node.to_string()),
        config: disko_args(flake, eval),
    }
}

fn disko_args(flake: &Path, eval: crate::cli::Eval) -> DiskoArgs {
    DiskoArgs {
        flake: flake.to_path_buf(),
        eval,
        disko_json: None,
        builtin_layout: None,
    }
}

fn plan_node(a: &ImagesArgs, node: &str) -> Result<NodeJob> {
    let custom = custom_for(&a.custom, Some((a.flake.as_path(), node)))?;
    let cfg = load_disko(node, &disko_args(&a.flake, a.eval))?;
    let origin = cfg.source.describe();
    // The node's SD card disk must be there (its partition gives the card's layout) ...
    choose_disk(&cfg.devices, None, true, &origin)?;
    let ssd = choose_disk(&cfg.devices, None, false, &origin)?;
    let ssd_size = match (&a.ssd_size, &ssd.image_size) {
        (Some(s), _) => s.0,
        (None, Some(s)) => parse_size(s)
            .with_context(|| format!("imageSize '{s}' of disk '{}' in {origin}", ssd.name))?,
        (None, None) => 2 << 30,
    };
    if !ssd_size.is_multiple_of(512) {
        bail!(usage(format!(
            "{node}: SSD image size {ssd_size} is not a multiple of 512 bytes"
        )));
    }
    let sd_path = a.out.join(format!("{node}-sdcard.img"));
    let ssd_path = a.out.join(format!("{node}-ssd.img"));
    // A missing --out is created later; only an existing one can hold files to replace.
    if a.out.is_dir() {
        check_replaceable(&sd_path, a.force)?;
        check_replaceable(&ssd_path, a.force)?;
    }
    Ok(NodeJob {
        node: node.to_string(),
        layout: layout_args(&a.flake, node, a.eval),
        config: cfg,
        custom,
        ssd,
        ssd_size,
        sd_path,
        ssd_path,
    })
}

fn row(
    node: &str,
    kind: &'static str,
    image: &Path,
    bmap: &Path,
    size: u64,
    written: u64,
) -> Result<Row> {
    let map = std::fs::read(bmap).with_context(|| format!("reading {}", bmap.display()))?;
    Ok(Row {
        node: node.to_string(),
        kind,
        image: image.display().to_string(),
        bmap: bmap.display().to_string(),
        size,
        bytes_written: written,
        bmap_sha256: Sha256Digest::of(&map).hex(),
    })
}

/// Builds and writes one node's pair.
fn make(job: &NodeJob, fw: &Firmware, g: &Global) -> Result<[Row; 2]> {
    let mut fw = fw.clone();
    let done = customise(&mut fw, &job.custom, g)?;
    let layout = super::sd_layout_with(&job.layout, &fw, Some(&job.config))?;
    let size = layout.default_image_size();
    let (_, card, _) = super::sdcard::build(
        &mut fw,
        &layout,
        size,
        &done,
        (&job.layout.label, Some(&job.node)),
        g,
    )?;
    let (stats, bmap) = write_image_and_map(&job.sd_path, &card.disk, g.progress.as_ref())?;
    let sd = row(
        &job.node,
        "sdcard",
        &job.sd_path,
        &bmap,
        size,
        stats.bytes_written,
    )?;
    let seed = format!("{}/{}", job.node, job.ssd.name);
    let plan = crate::ssd::plan(&job.ssd, job.ssd_size, 512, &seed)?;
    let (img, _, left) = build_ssd(&plan, &job.ssd, true, &seed, super::timestamp(None)?)?;
    for l in &left {
        g.progress.notice(&format!("notice: {}: {l}", job.node));
    }
    let (stats, bmap) = write_image_and_map(&job.ssd_path, &img, g.progress.as_ref())?;
    let ssd = row(
        &job.node,
        "ssd",
        &job.ssd_path,
        &bmap,
        job.ssd_size,
        stats.bytes_written,
    )?;
    Ok([sd, ssd])
}

pub fn run(a: &ImagesArgs, g: &Global) -> Result<()> {
    if !a.flake.is_dir() {
        bail!(usage(format!(
            "--flake {}: no such directory",
            a.flake.display()
        )));
    }
    let nodes = crate::ssd::config::nodes(&a.flake);
    if nodes.is_empty() {
        bail!(usage(format!(
            "--flake {}: no hosts/NODE/disk-config.nix, so no nodes",
            a.flake.display()
        )));
    }
    if a.out.exists() && !a.out.is_dir() {
        bail!(usage(format!("--out {}: not a directory", a.out.display())));
    }
    // Every node's inputs first: a bad config or pi-burn.toml stops the run before any write.
    let jobs = nodes
        .iter()
        .map(|n| plan_node(a, n).with_context(|| format!("node {n}")))
        .collect::<Result<Vec<_>>>()?;
    let fw = load_firmware(&a.firmware, g)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    // One thread per node: building the FATs and hashing the ranges is CPU work.
    let results: Vec<Result<[Row; 2]>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|job| s.spawn(|| make(job, &fw, g).with_context(|| format!("node {}", job.node))))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker panicked")))
            })
            .collect()
    });
    let mut rows = vec![];
    for r in results {
        rows.extend(r?);
    }
    if g.json {
        let j = serde_json::json!({
            "flake": a.flake.display().to_string(), "out": a.out.display().to_string(),
            "firmware": { "board": fw.board, "version": fw.version, "zip_sha256": fw.zip_sha256.hex(), "nar_sha256": fw.nar_sha256.sri() },
            "images": rows,
        });
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else if !g.quiet {
        println!(
            "{:<10} {:<7} {:<28} {:>9} {:>9}  bmap sha256",
            "node", "kind", "image", "size", "written"
        );
        for r in &rows {
            let name = Path::new(&r.image)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            println!(
                "{:<10} {:<7} {:<28} {:>9} {:>9}  {}",
                r.node,
                r.kind,
                name,
                human(r.size),
                human(r.bytes_written),
                r.bmap_sha256
            );
        }
        println!(
            "{} nodes, firmware {} {}, in {}",
            jobs.len(),
            fw.board,
            fw.version,
            a.out.display()
        );
    }
    Ok(())
}
