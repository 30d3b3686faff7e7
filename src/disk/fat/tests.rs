//! FAT32 builds checked by fatfs itself and against the fixups' rules.
use super::*;

#[test]
fn unix_time_converts_to_utc_civil_time() {
    assert_eq!(
        Timestamp::from_unix(0),
        Timestamp::date(1980, 1, 1),
        "before 1980 clamps"
    );
    let t = Timestamp::from_unix(1763683200); // 2025-11-21T00:00:00Z
    assert_eq!((t.year, t.month, t.day, t.hour), (2025, 11, 21, 0));
    let t = Timestamp::from_unix(951782400 + 3661); // 2000-02-29T01:01:01Z
    assert_eq!(
        (t.year, t.month, t.day, t.hour, t.min, t.sec),
        (2000, 2, 29, 1, 1, 1)
    );
}

#[test]
fn cluster_size_follows_mkfs_and_shrinks_for_small_partitions() {
    assert_eq!(cluster_size_for(512 << 20, 512).unwrap(), 4096);
    assert_eq!(cluster_size_for(1 << 30, 512).unwrap(), 4096);
    assert_eq!(cluster_size_for(100 << 20, 512).unwrap(), 1024);
    assert_eq!(cluster_size_for(300 << 20, 4096).unwrap(), 4096);
    let e = cluster_size_for(100 << 20, 4096).unwrap_err().to_string();
    assert!(
        e.contains("cannot hold FAT32") && e.contains("4096-byte"),
        "{e}"
    );
    assert!(cluster_size_for(16 << 20, 512).is_err());
}

#[test]
fn labels_are_checked_and_upper_cased() {
    assert_eq!(&label_bytes("firmware").unwrap(), b"FIRMWARE   ");
    assert!(label_bytes("").is_err());
    assert!(label_bytes("TWELVE_CHARS").is_err());
    assert!(label_bytes("A/B").is_err());
}

#[test]
fn firmware_larger_than_the_partition_is_refused_before_formatting() {
    let mut files = FileSet::new();
    files
        .add_file("big.bin", vec![1u8; 40 << 20], false)
        .unwrap();
    let mut disk = SparseImage::new(64 << 20);
    let spec = FatSpec {
        label: Some("FIRMWARE".into()),
        volume_id: 1,
        timestamp: Timestamp::date(2025, 1, 1),
        sector_size: 512,
        hidden_sectors: 2048,
    };
    let e = build_fat32(&mut disk, 1 << 20, 34 << 20, &files, &spec)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("firmware needs about") && e.contains("--partition-size"),
        "{e}"
    );
    assert_eq!(disk.written_bytes(), 0, "nothing is written");
}

#[test]
fn builds_a_volume_fatfs_can_read_back() {
    let mut files = FileSet::new();
    files
        .add_file("Readme.md", b"hello".to_vec(), false)
        .unwrap();
    files
        .add_file("overlays/upstream-pi4.dtbo", vec![7u8; 10000], false)
        .unwrap();
    files
        .add_file(
            "firmware/brcm/brcmfmac43455-sdio.Raspberry",
            vec![1u8; 3],
            false,
        )
        .unwrap();
    let mut disk = SparseImage::new(300 << 20);
    let spec = FatSpec {
        label: Some("FIRMWARE".into()),
        volume_id: 0x1234_5678,
        timestamp: Timestamp::date(2025, 11, 21),
        sector_size: 512,
        hidden_sectors: 2048,
    };
    let info = build_fat32(&mut disk, 1 << 20, 256 << 20, &files, &spec).unwrap();
    assert_eq!(info.volume_id, "1234-5678");
    let slice = fscommon::StreamSlice::new(&mut disk, 1 << 20, 257 << 20).unwrap();
    let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new()).unwrap();
    let mut s = String::new();
    use std::io::Read;
    fs.root_dir()
        .open_file("Readme.md")
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "hello");
    let names: Vec<String> = fs
        .root_dir()
        .iter()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.contains(&"Readme.md".to_string()), "{names:?}");
    assert_eq!(fs.stats().unwrap().free_clusters(), info.free_clusters);
}

#[test]
fn a_full_root_directory_still_gets_its_label() {
    // Regression (issue 14): 5 files plus 122 short names (and every 64 more) were refused with
    // "the root directory has no room for the volume label".
    // fsck.fat checks the same volumes in the integration tests (sdcard::a_full_root_...).
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
        build_fat32(&mut disk, 1 << 20, 512 << 20, &files, &spec)
            .unwrap_or_else(|e| panic!("{extra}: {e:#}"));
        let slice = fscommon::StreamSlice::new(&mut disk, 1 << 20, 513 << 20).unwrap();
        let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new()).unwrap();
        let names: Vec<String> = fs
            .root_dir()
            .iter()
            .map(|e| e.unwrap())
            .filter(|e| !e.attributes().contains(fatfs::FileAttributes::VOLUME_ID))
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 5 + extra, "{extra}");
        drop(fs);
        // The root's first entry is the label (root at cluster 2, the data area's start).
        let mut bs = [0u8; 512];
        disk.read_at(1 << 20, &mut bs);
        let u16_at = |o: usize| u16::from_le_bytes([bs[o], bs[o + 1]]) as u64;
        let fat = u32::from_le_bytes(bs[36..40].try_into().unwrap()) as u64;
        let data = (u16_at(14) + bs[16] as u64 * fat) * u16_at(11);
        let mut first = [0u8; 32];
        disk.read_at((1 << 20) + data, &mut first);
        assert_eq!(
            &first[..12],
            b"FIRMWARE   \x08",
            "{extra}: the label comes first"
        );
    }
}
