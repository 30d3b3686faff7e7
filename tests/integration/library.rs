//! The library's parts against outside tools, where a unit test could not say "ignored": the
//! zstd and xz decoders against the real compressors, a FAT32 with a full root directory
//! against fsck.fat.

use crate::harness::*;
use pi_burn::disk::fat::{build_fat32, FatSpec, Timestamp};
use pi_burn::disk::sparse::SparseImage;
use pi_burn::firmware::fileset::FileSet;
use std::io::Read;

/// Compresses `data` with `tool args` (None, marking the test ignored, when the tool is
/// missing): the packed bytes, and a decoder of any bytes through pi-burn's source.
type Decode = dyn Fn(&[u8]) -> std::io::Result<Vec<u8>>;
fn packed_with(
    tool: &str,
    args: &[&str],
    ext: &str,
    data: &[u8],
) -> Option<(Vec<u8>, Box<Decode>)> {
    if !have_tool(tool) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("x.img");
    std::fs::write(&raw, data).unwrap();
    run_ok(std::process::Command::new(tool).args(args).arg(&raw));
    let packed = dir.path().join(format!("x.img.{ext}"));
    let bytes = std::fs::read(&packed).unwrap();
    let read_all = move |b: &[u8]| {
        let _keep = &dir;
        std::fs::write(&packed, b).unwrap();
        let mut out = vec![];
        pi_burn::write::source::open(&packed)
            .unwrap()
            .stream
            .unwrap()
            .read_to_end(&mut out)
            .map(|_| out)
    };
    Some((bytes, Box::new(read_all)))
}

fn a_zstd_frame_with_a_wrong_checksum_is_an_error() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let Some((mut z, read_all)) = packed_with("zstd", &["-q", "-f", "--check"], "zst", &data)
    else {
        return;
    };
    assert_eq!(read_all(&z).unwrap(), data);
    // Flip a bit of the checksum itself (the last 4 bytes): the data decodes, the check fails.
    let n = z.len();
    z[n - 2] ^= 1;
    let e = read_all(&z).unwrap_err().to_string();
    assert!(e.contains("checksum"), "{e}");
}

fn xz_streams_decode_and_corruption_is_caught() {
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 13 % 241) as u8).collect();
    let Some((mut z, read_all)) = packed_with("xz", &["-q", "-f", "-1"], "xz", &data) else {
        return;
    };
    assert_eq!(read_all(&z).unwrap(), data);
    let n = z.len();
    z[n / 2] ^= 0x10;
    let e = read_all(&z).unwrap_err().to_string();
    assert!(e.starts_with("xz:"), "{e}");
}

/// Regression (issue 14): 5 files plus 122 short names (and every 64 more) in the root; fsck.fat
/// finds nothing to say about any of them.
fn a_full_root_directory_passes_fsck_fat() {
    if !have_tool("fsck.fat") {
        return;
    }
    for extra in [121usize, 122, 123, 186, 250] {
        let mut files = FileSet::new();
        for i in 0..5 + extra {
            files
                .add_file(&format!("F{i:04}.TXT"), vec![b'x'], false)
                .unwrap();
        }
        let mut disk = SparseImage::new(514 << 20);
        let spec = FatSpec {
            label: Some("FIRMWARE".into()),
            volume_id: 1,
            timestamp: Timestamp::date(2025, 11, 21),
            sector_size: 512,
            hidden_sectors: 2048,
        };
        build_fat32(&mut disk, 1 << 20, 512 << 20, &files, &spec).unwrap();
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(512 << 20).unwrap();
        for (off, data) in disk.blocks() {
            if (1 << 20..513 << 20).contains(&off) {
                use std::os::unix::fs::FileExt;
                f.as_file().write_all_at(data, off - (1 << 20)).unwrap();
            }
        }
        let o = tool("fsck.fat")
            .args(["-n", "-v"])
            .arg(f.path())
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{extra}: {out}");
        assert!(
            !out.contains("differ") && !out.contains("Invalid"),
            "{extra}: {out}"
        );
    }
}

// This module's tests, for the runner in main.rs.
crate::tests![
    a_zstd_frame_with_a_wrong_checksum_is_an_error,
    xz_streams_decode_and_corruption_is_caught,
    a_full_root_directory_passes_fsck_fat,
];
