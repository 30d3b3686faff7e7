//! Each check of a node's NixOS config against the media pi-burn makes for it. Each names the
//! option, its value, what on the card or SSD it clashes with, and the fix; each cites where
//! its fact comes from.

use crate::ssd::options::Options;
use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The node will not boot, or its card is rewritten.
    Error,
    /// Likely trouble.
    Warning,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub level: Level,
    pub option: String,
    pub value: String,
    /// What it clashes with.
    pub clash: String,
    pub fix: String,
}

/// What pi-burn makes for the node, as far as the checks need it.
#[derive(Debug, Clone)]
pub struct Media {
    pub board: String,
    /// The firmware card's FAT label (FIRMWARE) and where the node mounts it.
    pub card_label: String,
    pub card_mount: Option<String>,
    /// The SSD's ESP: its GPT name and where the node mounts it.
    pub esp_label: Option<String>,
    pub esp_mount: Option<String>,
    /// The SSD is on USB (not NVMe or MMC).
    pub ssd_on_usb: bool,
    /// The firmware is in the SSD's ESP (pi-burn.toml `ssd_firmware`, `ssd --with-firmware`),
    /// not on a card: the node mounts it at `esp_mount`.
    pub firmware_on_ssd: bool,
    /// The firmware's files at the root of its partition (required files and top entries).
    pub firmware_top: Vec<String>,
    /// The UEFI settings the card gets: SystemTableMode and RamLimitTo3GB (None: default).
    pub system_table_mode: Option<u32>,
    pub ram_limit_3gb: Option<u32>,
    /// The card's config.txt as it will be (the release's with the edits), when the release is
    /// in the cache; and RPI_EFI.fd's size.
    pub config_txt: Option<String>,
    pub efi_fd_bytes: Option<u64>,
}

impl Media {
    /// Devicetree mode: SystemTableMode 1 (ACPI+Devicetree) or 2 (Devicetree). Linux on arm64
    /// takes the Devicetree when it is given one that is not empty (its `acpi=` default), so
    /// both modes boot with the Devicetree.
    fn devicetree(&self) -> bool {
        matches!(self.system_table_mode, Some(1 | 2))
    }

    /// SystemTableMode as stored, or the firmware's default (0, ACPI; FACTS 4b and 4d).
    fn table_mode(&self) -> u32 {
        self.system_table_mode.unwrap_or(0)
    }
}

fn shown(o: &Options, name: &str) -> String {
    match o.get(name) {
        serde_json::Value::Null => "(unset)".into(),
        v => v.to_string(),
    }
}

/// Every finding for a node with options `o` and media `m`.
pub fn check(o: &Options, m: &Media) -> Vec<Finding> {
    let mut out = vec![];
    let mut add = |level, option: &str, value: String, clash: &str, fix: &str| {
        out.push(Finding {
            level,
            option: option.to_string(),
            value,
            clash: clash.to_string(),
            fix: fix.to_string(),
        })
    };
    // The UEFI firmware loads an EFI binary from an ESP; edk2 reads no extlinux.conf (FACTS 12;
    // the primer's pi-common.nix sets extlinux, and nixos-hardware raspberry-pi/4/default.nix:45
    // sets it with mkDefault).
    let systemd_boot = o.flag("boot.loader.systemd-boot.enable") == Some(true);
    let grub_efi = o.flag("boot.loader.grub.enable") == Some(true)
        && o.flag("boot.loader.grub.efiSupport") == Some(true);
    let extlinux = o.flag("boot.loader.generic-extlinux-compatible.enable") == Some(true);
    // NixOS declares systemd-boot.enable (default false): null means the evaluated config is
    // no NixOS system (a test stub, a partial flake), which says nothing of its loader.
    let said_no_loader = o.flag("boot.loader.systemd-boot.enable") == Some(false);
    if !systemd_boot && !grub_efi && (extlinux || said_no_loader) {
        add(
            Level::Error,
            if extlinux {
                "boot.loader.generic-extlinux-compatible.enable"
            } else {
                "boot.loader.systemd-boot.enable"
            },
            if extlinux {
                "true".into()
            } else {
                shown(o, "boot.loader.systemd-boot.enable")
            },
            "the UEFI firmware card boots an EFI loader from the SSD's ESP and reads no extlinux.conf (that is U-Boot's): the node does not boot",
            "boot.loader.systemd-boot.enable = true; boot.loader.generic-extlinux-compatible.enable = false; (or GRUB with efiSupport)",
        );
    }
    // Modules that rewrite the firmware partition (FACTS 12; their sources cited in options.rs).
    let card_label = m.card_label.as_str();
    if o.flag("raspberry-pi-nix.firmware-migration-service.enable") == Some(true)
        && o.text("raspberry-pi-nix.firmware-partition-label") == Some(card_label)
    {
        add(
            Level::Error,
            "raspberry-pi-nix.firmware-migration-service.enable",
            format!(
                "true (raspberry-pi-nix.firmware-partition-label = \"{card_label}\", uboot.enable = {})",
                shown(o, "raspberry-pi-nix.uboot.enable")
            ),
            &format!("its raspberry-pi-firmware-migrate service mounts /dev/disk/by-label/{card_label}, the card pi-burn makes, at first boot and replaces config.txt (without armstub=RPI_EFI.fd), start4.elf, the device trees and overlays: the next boot is no longer UEFI"),
            "raspberry-pi-nix.firmware-migration-service.enable = false; (or drop the raspberry-pi-nix module: the card holds the firmware)",
        );
    }
    for (enable, path, what) in [
        (
            "hardware.raspberry-pi.firmware.enable",
            "hardware.raspberry-pi.firmware.path",
            "nixos-hardware's firmware module copies the vendor firmware and its own config.txt there on every switch",
        ),
        (
            "boot.loader.raspberry-pi.enable",
            "boot.loader.raspberry-pi.firmwarePath",
            "nixos-raspberrypi's boot loader manages the firmware partition there",
        ),
    ] {
        let at = o.text(path).unwrap_or("/boot/firmware");
        // On the SSD, the ESP holds the firmware: a path in it (its firmware/ directory is the
        // release's) rewrites it as well.
        let hits = match (m.firmware_on_ssd, m.esp_mount.as_deref()) {
            (true, Some(esp)) => {
                at == esp || at.strip_prefix(esp).is_some_and(|r| r.starts_with('/'))
            }
            _ => m.card_mount.as_deref() == Some(at),
        };
        if o.flag(enable) == Some(true) && hits {
            let holder = if m.firmware_on_ssd {
                "in the SSD's ESP, which holds the UEFI firmware"
            } else {
                "where the node mounts the UEFI firmware card"
            };
            add(
                Level::Error,
                enable,
                format!("true ({path} = \"{at}\")"),
                &format!("{at} is {holder}: {what}, replacing pi-burn's files"),
                &format!("{enable} = false;"),
            );
        }
    }
    // With the firmware in the ESP, systemd-boot's extraFiles of the same names overwrite it on
    // every switch, and delete it once dropped from the list (systemd-boot-builder.py's
    // `.extra-files`, nixpkgs 0137840). The builder itself touches only loader/entries and
    // EFI/nixos.
    if m.firmware_on_ssd {
        let clash: Vec<String> = o
            .list("boot.loader.systemd-boot.extraFiles")
            .into_iter()
            .filter(|f| {
                let top = f.trim_start_matches('/').split('/').next().unwrap_or("");
                m.firmware_top.iter().any(|t| t.eq_ignore_ascii_case(top))
            })
            .collect();
        if !clash.is_empty() {
            add(
                Level::Error,
                "boot.loader.systemd-boot.extraFiles",
                format!("{clash:?}"),
                "the SSD's ESP holds the UEFI firmware's files by those names: systemd-boot copies its extraFiles over them on every switch and deletes them when they leave the list",
                "drop them from boot.loader.systemd-boot.extraFiles (pi-burn.toml's uefi and config_txt set the firmware's settings)",
            );
        }
    }
    // nixpkgs' vendor kernel (linux-rpi.nix: pname linux_rpi-*, version *-stable_*) hangs
    // under ACPI-only tables after "EFI stub: Generating empty DTB" (nixpkgs #350689, nvmd #69).
    let pname = o.text("boot.kernelPackages.kernel.pname").unwrap_or("");
    let version = o.text("boot.kernelPackages.kernel.version").unwrap_or("");
    if (pname.starts_with("linux_rpi") || version.contains("-stable_")) && m.table_mode() == 0 {
        add(
            Level::Error,
            "boot.kernelPackages",
            format!("{pname} {version}"),
            "the vendor kernel hangs after \"EFI stub: Generating empty DTB\" under ACPI-only tables, and the card's SystemTableMode is 0 (ACPI)",
            "a mainline kernel (boot.kernelPackages = pkgs.linuxPackages_latest;), or SystemTableMode = 1 or 2 in pi-burn.toml",
        );
    }
    // The variables live in RPI_EFI.fd on the card (FACTS 4c); bootctl failing to write EFI
    // variables breaks the switch on such firmware (nixpkgs #151336; unconfirmed for pftf).
    if o.flag("boot.loader.efi.canTouchEfiVariables") == Some(true) {
        add(
            Level::Warning,
            "boot.loader.efi.canTouchEfiVariables",
            "true".into(),
            "the firmware keeps its variables in RPI_EFI.fd on the card: boot entries written at runtime tie the card to this board, and firmware with unreliable variables fails bootctl's writes",
            "boot.loader.efi.canTouchEfiVariables = false;",
        );
    }
    // A USB SSD root: the initrd needs the USB host and storage drivers; the Pi 4's VL805 USB
    // controller sits behind PCIe, which under the Devicetree needs pcie-brcmstb and
    // reset-raspberrypi (nixos-hardware raspberry-pi/4/default.nix:34-38).
    let modules: Vec<String> = [
        o.list("boot.initrd.availableKernelModules"),
        o.list("boot.initrd.kernelModules"),
    ]
    .concat();
    let has = |m: &str| modules.iter().any(|x| x == m);
    if m.ssd_on_usb {
        let mut want = vec!["xhci_pci", "usb_storage", "uas"];
        if m.devicetree() && m.board == "rpi4" {
            want.extend(["pcie-brcmstb", "reset-raspberrypi"]);
        }
        let missing: Vec<&str> = want.into_iter().filter(|w| !has(w)).collect();
        if !missing.is_empty() {
            add(
                Level::Warning,
                "boot.initrd.availableKernelModules",
                format!("{:?}", modules),
                &format!(
                    "the root is on the USB SSD, and the initrd lacks {}",
                    missing.join(", ")
                ),
                &format!(
                    "boot.initrd.availableKernelModules = [ {} ];",
                    missing
                        .iter()
                        .map(|m| format!("\"{m}\""))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            );
        }
    }
    // The initrd's SSH unlock needs the Ethernet driver (the Pi 4's is genet;
    // nixos-hardware raspberry-pi/4/default.nix:38).
    if o.flag("boot.initrd.network.enable") == Some(true) && m.board == "rpi4" && !has("genet") {
        add(
            Level::Warning,
            "boot.initrd.network.enable",
            "true".into(),
            "the initrd brings up the network, but genet (the Pi 4's Ethernet) is not in it",
            "boot.initrd.availableKernelModules = [ \"genet\" ];",
        );
    }
    // The initrd's host key: the one `pi-burn keys` makes (FACTS 10), else a key made on the
    // node after a first boot.
    if o.flag("boot.initrd.network.ssh.enable") == Some(true)
        && !o
            .list("boot.initrd.network.ssh.hostKeys")
            .iter()
            .any(|k| k == "/etc/ssh/initrd_ssh_host_ed25519_key")
    {
        add(
            Level::Warning,
            "boot.initrd.network.ssh.hostKeys",
            shown(o, "boot.initrd.network.ssh.hostKeys"),
            "the initrd's SSH server does not use the host key `pi-burn keys` makes (/etc/ssh/initrd_ssh_host_ed25519_key, copied by nixos-anywhere --extra-files)",
            "boot.initrd.network.ssh.hostKeys = [ \"/etc/ssh/initrd_ssh_host_ed25519_key\" ];",
        );
    }
    // ZFS refuses to import a pool without a host id (NixOS asserts networking.hostId with ZFS).
    if o.uses_zfs() && o.text("networking.hostId").is_none() {
        add(
            Level::Warning,
            "networking.hostId",
            "(unset)".into(),
            "the node uses ZFS, which needs a host id to import its pool",
            "networking.hostId = \"<8 hex digits>\"; (head -c 4 /dev/urandom | od -A none -t x4)",
        );
    }
    // /boot must be the ESP pi-burn lays out, where systemd-boot puts the loader the firmware
    // starts (disko mounts it by its GPT name, /dev/disk/by-partlabel/<label>).
    if let (Some(label), Some(mount)) = (&m.esp_label, &m.esp_mount) {
        let want = format!("/dev/disk/by-partlabel/{label}");
        let fs = o.file_system(mount);
        let esp_ok = fs.is_some_and(|(dev, ty)| dev == Some(want.as_str()) && ty == Some("vfat"));
        let efi_mount = o
            .text("boot.loader.efi.efiSysMountPoint")
            .unwrap_or("/boot");
        if !esp_ok {
            add(
                Level::Warning,
                &format!("fileSystems.\"{mount}\""),
                fs.map_or("(unset)".into(), |(d, t)| format!("{} ({})", d.unwrap_or("?"), t.unwrap_or("?"))),
                &format!("the SSD's ESP pi-burn lays out is {want} (vfat), mounted at {mount}"),
                &format!("let disko mount it (its partition's mountpoint = \"{mount}\"), or fileSystems.\"{mount}\" = {{ device = \"{want}\"; fsType = \"vfat\"; }};"),
            );
        } else if efi_mount != mount {
            add(
                Level::Warning,
                "boot.loader.efi.efiSysMountPoint",
                format!("\"{efi_mount}\""),
                &format!("the ESP is mounted at {mount}: the loader installed at {efi_mount} is not on it"),
                &format!("boot.loader.efi.efiSysMountPoint = \"{mount}\";"),
            );
        }
    }
    // RAM above 3 GB under the Devicetree needs the PCIe DMA limit overlay (pftf/RPi4 #278, PR
    // #279 open); the release ships only miniuart-bt and upstream-pi4 overlays.
    let pcie_overlay = m
        .config_txt
        .as_deref()
        .is_some_and(|t| t.lines().any(|l| l.trim() == "dtoverlay=pcie-32bit-dma"));
    if m.board == "rpi4" && m.ram_limit_3gb == Some(0) && m.devicetree() && !pcie_overlay {
        add(
            Level::Warning,
            "RamLimitTo3GB (pi-burn.toml)",
            format!("0, with SystemTableMode = {}", m.table_mode()),
            "above 3 GB under the Devicetree, PCIe DMA (the USB controller) needs dtoverlay=pcie-32bit-dma, which the card's config.txt does not load (and the release ships no such overlay)",
            "add overlays/pcie-32bit-dma.dtbo and config_txt dtoverlay=pcie-32bit-dma (pftf/RPi4 PR #279), or RamLimitTo3GB = 1, or SystemTableMode = 0",
        );
    }
    // The Devicetree is loaded at device_tree_address: inside RPI_EFI.fd's bytes it is
    // overwritten ("Generating empty DTB", a reboot loop: pftf/RPi4 #274).
    if let (Some(text), Some(fd)) = (&m.config_txt, m.efi_fd_bytes) {
        let dta = text.lines().find_map(|l| {
            let (k, v) = l.trim().split_once('=')?;
            (k.trim() == "device_tree_address")
                .then(|| crate::util::text::hex(v, true, 16).or_else(|| v.trim().parse().ok()))
                .flatten()
        });
        if let Some(a) = dta.filter(|a| *a < fd) {
            add(
                Level::Warning,
                "config.txt device_tree_address",
                format!("0x{a:x}"),
                &format!("RPI_EFI.fd is 0x{fd:x} bytes, loaded from 0: the Devicetree there overlaps it"),
                &format!("device_tree_address=0x{fd:x} or above (the release's config.txt has it), not an edit below it"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media() -> Media {
        Media {
            board: "rpi4".into(),
            card_label: "FIRMWARE".into(),
            card_mount: Some("/boot/firmware".into()),
            esp_label: Some("disk-usb-ssd-BOOT".into()),
            esp_mount: Some("/boot".into()),
            ssd_on_usb: true,
            firmware_on_ssd: false,
            firmware_top: vec!["RPI_EFI.fd".into(), "config.txt".into(), "firmware".into()],
            system_table_mode: None,
            ram_limit_3gb: None,
            config_txt: None,
            efi_fd_bytes: None,
        }
    }

    fn opts(v: serde_json::Value) -> Options {
        Options::from_json(v, "test").unwrap()
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "boot.loader.systemd-boot.enable": true,
            "boot.loader.efi.canTouchEfiVariables": false,
            "boot.initrd.availableKernelModules": ["xhci_pci", "usb_storage", "uas", "genet"],
            "boot.initrd.network.enable": true,
            "boot.initrd.network.ssh.enable": true,
            "boot.initrd.network.ssh.hostKeys": ["/etc/ssh/initrd_ssh_host_ed25519_key"],
            "boot.supportedFilesystems": ["zfs"],
            "networking.hostId": "a1b2c3d4",
            "fileSystems": { "/boot": { "device": "/dev/disk/by-partlabel/disk-usb-ssd-BOOT", "fsType": "vfat" } },
        })
    }

    #[test]
    fn a_node_set_up_for_the_card_has_no_finding() {
        assert_eq!(check(&opts(good()), &media()), vec![]);
    }

    #[test]
    fn the_primer_s_config_fails_naming_each_option() {
        let mut v = good();
        v["boot.loader.systemd-boot.enable"] = false.into();
        v["boot.loader.generic-extlinux-compatible.enable"] = true.into();
        v["raspberry-pi-nix.firmware-migration-service.enable"] = true.into();
        v["raspberry-pi-nix.firmware-partition-label"] = "FIRMWARE".into();
        v["hardware.raspberry-pi.firmware.enable"] = true.into();
        let f = check(&opts(v), &media());
        let errors: Vec<&str> = f
            .iter()
            .filter(|f| f.level == Level::Error)
            .map(|f| f.option.as_str())
            .collect();
        assert_eq!(
            errors,
            [
                "boot.loader.generic-extlinux-compatible.enable",
                "raspberry-pi-nix.firmware-migration-service.enable",
                "hardware.raspberry-pi.firmware.enable"
            ]
        );
        // Aimed elsewhere: no clash.
        let mut v = good();
        v["raspberry-pi-nix.firmware-migration-service.enable"] = true.into();
        v["raspberry-pi-nix.firmware-partition-label"] = "RPIFW".into();
        assert_eq!(check(&opts(v), &media()), vec![]);
    }

    #[test]
    fn the_vendor_kernel_needs_a_devicetree_and_usb_needs_pcie_under_one() {
        let mut v = good();
        v["boot.kernelPackages.kernel.pname"] = "linux_rpi-bcm2711".into();
        v["boot.kernelPackages.kernel.version"] = "6.6.51-stable_20241008".into();
        let f = check(&opts(v.clone()), &media());
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].level, f[0].option.as_str()),
            (Level::Error, "boot.kernelPackages")
        );
        let dt = Media {
            system_table_mode: Some(2),
            ..media()
        };
        let f = check(&opts(v), &dt);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].clash.contains("pcie-brcmstb, reset-raspberrypi"),
            "{f:?}"
        );
    }

    #[test]
    fn warnings_name_what_the_node_lacks() {
        let mut v = good();
        v["boot.loader.efi.canTouchEfiVariables"] = true.into();
        v["networking.hostId"] = serde_json::Value::Null;
        v["boot.initrd.availableKernelModules"] = serde_json::json!(["usb_storage"]);
        v["boot.initrd.network.ssh.hostKeys"] = serde_json::json!(["/etc/secrets/initrd/key"]);
        v["fileSystems"] = serde_json::json!({ "/boot": { "device": "/dev/disk/by-label/NIXOS-BOOT", "fsType": "vfat" } });
        let m = Media {
            system_table_mode: Some(1),
            ram_limit_3gb: Some(0),
            config_txt: Some("device_tree_address=0x1f0000\r\n".into()),
            efi_fd_bytes: Some(0x3e0000),
            ..media()
        };
        let f = check(&opts(v), &m);
        let options: Vec<&str> = f.iter().map(|f| f.option.as_str()).collect();
        assert_eq!(
            options,
            [
                "boot.loader.efi.canTouchEfiVariables",
                "boot.initrd.availableKernelModules",
                "boot.initrd.network.enable",
                "boot.initrd.network.ssh.hostKeys",
                "networking.hostId",
                "fileSystems.\"/boot\"",
                "RamLimitTo3GB (pi-burn.toml)",
                "config.txt device_tree_address"
            ]
        );
        assert!(f.iter().all(|f| f.level == Level::Warning));
    }
}
