//! Every refusal rule against fixture sysfs, /dev, mountinfo and swaps trees (no root needed).

use super::sysfs::{self, SysTree};
use super::*;
use std::fs;
use std::os::unix::fs::symlink;

const USB: &str = "devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0";
const NVME: &str = "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0";
const MMC: &str = "devices/platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:aaaa";

struct Fixture {
    dir: tempfile::TempDir,
    mountinfo: String,
    swaps: String,
}

impl Fixture {
    fn new() -> Self {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
            mountinfo: String::new(),
            swaps: "Filename Type Size Used Priority\n".into(),
        };
        for d in [
            "sys/dev/block",
            "sys/class/block",
            "sys/block",
            "dev/disk/by-id",
        ] {
            fs::create_dir_all(f.dir.path().join(d)).unwrap();
        }
        f
    }

    fn w(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// A disk `name` (major:minor) under `parent`, with `parts` partitions (labels given).
    fn disk(
        &self,
        parent: &str,
        name: &str,
        (major, minor): (u64, u64),
        sectors: u64,
        removable: bool,
        parts: &[&str],
    ) {
        let base = format!("sys/{parent}/block/{name}");
        self.w(&format!("{base}/size"), &sectors.to_string());
        self.w(
            &format!("{base}/removable"),
            if removable { "1" } else { "0" },
        );
        self.w(&format!("{base}/ro"), "0");
        self.w(&format!("{base}/dev"), &format!("{major}:{minor}"));
        self.w(&format!("{base}/queue/logical_block_size"), "512");
        self.w(&format!("sys/{parent}/model"), "Portable SSD T7   ");
        self.w(&format!("sys/{parent}/vendor"), "Samsung ");
        fs::create_dir_all(self.dir.path().join(format!("{base}/holders"))).unwrap();
        symlink(
            self.dir.path().join(&base),
            self.dir
                .path()
                .join(format!("sys/dev/block/{major}:{minor}")),
        )
        .unwrap();
        symlink(
            self.dir.path().join(&base),
            self.dir.path().join(format!("sys/class/block/{name}")),
        )
        .unwrap();
        symlink(
            self.dir.path().join(&base),
            self.dir.path().join(format!("sys/block/{name}")),
        )
        .unwrap();
        symlink(
            self.dir.path().join(format!("sys/{parent}")),
            self.dir.path().join(format!("{base}/device")),
        )
        .unwrap();
        for (i, label) in parts.iter().enumerate() {
            let n = i as u64 + 1;
            let pname = if name.ends_with(|c: char| c.is_ascii_digit()) {
                format!("{name}p{n}")
            } else {
                format!("{name}{n}")
            };
            let pb = format!("{base}/{pname}");
            self.w(&format!("{pb}/partition"), &n.to_string());
            self.w(&format!("{pb}/dev"), &format!("{major}:{}", minor + n));
            self.w(&format!("{pb}/size"), "1048576");
            self.w(&format!("{pb}/uevent"), &format!("MAJOR={major}\nMINOR={}\nDEVNAME={pname}\nDEVTYPE=partition\nPARTN={n}\nPARTNAME={label}\n", minor + n));
            fs::create_dir_all(self.dir.path().join(format!("{pb}/holders"))).unwrap();
            symlink(
                self.dir.path().join(&pb),
                self.dir
                    .path()
                    .join(format!("sys/dev/block/{major}:{}", minor + n)),
            )
            .unwrap();
            symlink(
                self.dir.path().join(&pb),
                self.dir.path().join(format!("sys/class/block/{pname}")),
            )
            .unwrap();
        }
    }

    fn usb_disk(&self) {
        self.disk(
            USB,
            "sdb",
            (8, 16),
            976773168,
            false,
            &["disk-usb-ssd-BOOT", "disk-usb-ssd-zfs"],
        );
        self.w(
            "sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/serial",
            "S5SXNS0R123456\n",
        );
        symlink(
            "../../sdb",
            self.dir
                .path()
                .join("dev/disk/by-id/usb-Samsung_PSSD_T7_S5SXNS0R123456-0:0"),
        )
        .unwrap();
    }

    fn mount(&mut self, dev: &str, at: &str) {
        self.mountinfo.push_str(&format!(
            "36 25 {dev} / {at} rw,relatime shared:1 - vfat /dev/x rw\n"
        ));
    }

    fn tree(&self) -> SysTree {
        fs::write(self.dir.path().join("mountinfo"), &self.mountinfo).unwrap();
        fs::write(self.dir.path().join("swaps"), &self.swaps).unwrap();
        SysTree {
            sys: self.dir.path().join("sys"),
            dev: self.dir.path().join("dev"),
            mountinfo: self.dir.path().join("mountinfo"),
            swaps: self.dir.path().join("swaps"),
        }
    }
}

fn resolved(dev: (u64, u64)) -> Resolved {
    Resolved {
        given: "/dev/disk/by-id/x".into(),
        canonical: "/dev/x".into(),
        dev,
    }
}

#[test]
fn a_clean_usb_disk_is_accepted_and_described() {
    let f = Fixture::new();
    f.usb_disk();
    let t = f.tree();
    let d = inspect_whole_disk(&t, &resolved((8, 16))).unwrap();
    assert_eq!(d.name, "sdb");
    assert_eq!(d.size, 976773168 * 512);
    assert_eq!(d.transport, "usb");
    assert_eq!(d.model.as_deref(), Some("Portable SSD T7"));
    assert_eq!(d.vendor.as_deref(), Some("Samsung"));
    assert_eq!(d.serial.as_deref(), Some("S5SXNS0R123456"));
    assert!(d.by_id[0].ends_with("usb-Samsung_PSSD_T7_S5SXNS0R123456-0:0"));
    assert_eq!(d.partitions.len(), 2);
    assert_eq!(d.partitions[1].label.as_deref(), Some("disk-usb-ssd-zfs"));
    assert_eq!(d.partitions[1].dev, (8, 18));
    assert!(blockers(&t, &d, Allow::default()).unwrap().is_empty());
    assert_eq!(sysfs::list_disks(&t), vec![(8, 16)]);
}

#[test]
fn a_partition_is_refused_naming_its_disk() {
    let f = Fixture::new();
    f.usb_disk();
    let e = inspect_whole_disk(&f.tree(), &resolved((8, 17)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sdb1")
            && e.contains("partition of /dev/sdb")
            && e.contains("give the whole disk"),
        "{e}"
    );
}

#[test]
fn mounted_partitions_and_system_mounts_are_refused() {
    let mut f = Fixture::new();
    f.usb_disk();
    f.mount("8:17", "/media/pi\\040card");
    f.mount("8:18", "/");
    let t = f.tree();
    let d = sysfs::inspect(&t, (8, 16)).unwrap();
    let b = blockers(&t, &d, Allow::default()).unwrap();
    assert!(
        b.contains(&"sdb1 is mounted at /media/pi card".to_string()),
        "{b:?}"
    );
    assert!(
        b.contains(&"sdb2 holds / of the running system".to_string()),
        "{b:?}"
    );
}

#[test]
fn a_mounted_whole_disk_is_refused() {
    let mut f = Fixture::new();
    f.usb_disk();
    f.mount("8:16", "/mnt");
    let t = f.tree();
    let d = sysfs::inspect(&t, (8, 16)).unwrap();
    assert_eq!(
        blockers(&t, &d, Allow::default()).unwrap(),
        vec!["sdb is mounted at /mnt".to_string()]
    );
}

#[test]
fn active_swap_is_refused() {
    let mut f = Fixture::new();
    f.usb_disk();
    // Text of the fixture's own /proc/swaps: parsed by name, no device is opened.
    f.swaps
        .push_str("/dev/sdb2 partition 8388604 0 -2\n/swapfile file 1024 0 -3\n");
    let t = f.tree();
    let d = sysfs::inspect(&t, (8, 16)).unwrap();
    assert_eq!(
        blockers(&t, &d, Allow::default()).unwrap(),
        vec!["sdb2 is in use as swap".to_string()]
    );
}

#[test]
fn holders_are_refused_and_followed_to_their_mounts() {
    let mut f = Fixture::new();
    f.usb_disk();
    fs::create_dir_all(
        f.dir
            .path()
            .join(format!("sys/{USB}/block/sdb/sdb2/holders/dm-0")),
    )
    .unwrap();
    f.w("sys/class/block/dm-0/dev", "254:0");
    f.mount("254:0", "/nix");
    let t = f.tree();
    let d = sysfs::inspect(&t, (8, 16)).unwrap();
    let b = blockers(&t, &d, Allow::default()).unwrap();
    assert!(
        b.iter().any(|x| x.contains("sdb2 is in use by dm-0")),
        "{b:?}"
    );
    assert!(
        b.contains(&"dm-0 holds /nix of the running system".to_string()),
        "{b:?}"
    );
}

#[test]
fn a_fixed_disk_needs_allow_fixed_disk() {
    let f = Fixture::new();
    f.disk(NVME, "nvme0n1", (259, 0), 2000409264, false, &["EFI"]);
    let t = f.tree();
    let d = sysfs::inspect(&t, (259, 0)).unwrap();
    assert_eq!(d.transport, "nvme");
    assert_eq!(d.partitions[0].name, "nvme0n1p1");
    let b = blockers(&t, &d, Allow::default()).unwrap();
    assert_eq!(b.len(), 1);
    assert!(
        b[0].contains("fixed nvme disk") && b[0].contains("--allow-fixed-disk"),
        "{b:?}"
    );
    assert!(blockers(&t, &d, Allow { fixed_disk: true })
        .unwrap()
        .is_empty());
}

#[test]
fn an_sd_card_in_a_built_in_reader_is_portable_and_read_only_is_refused() {
    let f = Fixture::new();
    f.disk(MMC, "mmcblk0", (179, 0), 62333952, false, &[]);
    let t = f.tree();
    let d = sysfs::inspect(&t, (179, 0)).unwrap();
    assert_eq!(d.transport, "mmc");
    assert!(blockers(&t, &d, Allow::default()).unwrap().is_empty());
    f.w(&format!("sys/{MMC}/block/mmcblk0/ro"), "1");
    let d = sysfs::inspect(&t, (179, 0)).unwrap();
    assert_eq!(
        blockers(&t, &d, Allow::default()).unwrap(),
        vec!["mmcblk0 is read-only".to_string()]
    );
}

#[test]
fn an_empty_reader_is_refused() {
    let f = Fixture::new();
    f.disk(USB, "sdc", (8, 32), 0, true, &[]);
    let t = f.tree();
    let d = sysfs::inspect(&t, (8, 32)).unwrap();
    assert_eq!(
        blockers(&t, &d, Allow::default()).unwrap(),
        vec!["sdc has no medium (size 0)".to_string()]
    );
}

#[test]
fn a_loop_device_over_a_deleted_file_is_in_use() {
    const VIRTUAL: &str = "devices/virtual";
    let f = Fixture::new();
    f.disk(VIRTUAL, "loop3", (7, 3), 131072, false, &[]);
    f.w(
        &format!("sys/{VIRTUAL}/block/loop3/loop/backing_file"),
        "/tmp/card.img\n",
    );
    let t = f.tree();
    let d = sysfs::inspect(&t, (7, 3)).unwrap();
    assert_eq!(d.transport, "loop");
    assert!(blockers(&t, &d, Allow::default()).unwrap().is_empty());
    f.w(
        &format!("sys/{VIRTUAL}/block/loop3/loop/backing_file"),
        "/tmp/card.img (deleted)\n",
    );
    let d = sysfs::inspect(&t, (7, 3)).unwrap();
    assert_eq!(
        blockers(&t, &d, Allow::default()).unwrap(),
        vec![
            "loop3 is in use by a deleted file (/tmp/card.img): what is written there is lost"
                .to_string()
        ]
    );
}
