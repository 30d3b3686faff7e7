//! The NixOS options the doctor reads, by their NixOS names: one `nix eval --json` of
//! `nixosConfigurations.NODE.config` with an `--apply` that picks each (with an `or` default, so
//! a module the node does not import gives null), or the same JSON from `--options-json`.

use anyhow::{bail, Result};
use serde_json::{Map, Value};

/// The options, each as `(name, Nix expression of config)`. Lists that may hold paths are
/// mapped through `toString` (a path in `--json` output would be copied into the store: a key
/// file must never be).
pub const PICKS: &[(&str, &str)] = &[
    ("boot.loader.generic-extlinux-compatible.enable", "c.boot.loader.generic-extlinux-compatible.enable or null"),
    ("boot.loader.systemd-boot.enable", "c.boot.loader.systemd-boot.enable or null"),
    ("boot.loader.grub.enable", "c.boot.loader.grub.enable or null"),
    ("boot.loader.grub.efiSupport", "c.boot.loader.grub.efiSupport or null"),
    ("boot.loader.efi.canTouchEfiVariables", "c.boot.loader.efi.canTouchEfiVariables or null"),
    ("boot.loader.efi.efiSysMountPoint", "c.boot.loader.efi.efiSysMountPoint or null"),
    ("boot.kernelPackages.kernel.pname", "c.boot.kernelPackages.kernel.pname or null"),
    ("boot.kernelPackages.kernel.version", "c.boot.kernelPackages.kernel.version or null"),
    ("boot.kernelParams", "c.boot.kernelParams or null"),
    ("boot.initrd.availableKernelModules", "c.boot.initrd.availableKernelModules or null"),
    ("boot.initrd.kernelModules", "c.boot.initrd.kernelModules or null"),
    ("boot.initrd.network.enable", "c.boot.initrd.network.enable or null"),
    ("boot.initrd.network.ssh.enable", "c.boot.initrd.network.ssh.enable or null"),
    ("boot.initrd.network.ssh.hostKeys", "s (c.boot.initrd.network.ssh.hostKeys or null)"),
    ("boot.supportedFilesystems", "s (c.boot.supportedFilesystems or null)"),
    ("networking.hostId", "c.networking.hostId or null"),
    ("fileSystems", "builtins.mapAttrs (_: f: { device = s (f.device or null); fsType = f.fsType or null; }) (c.fileSystems or { })"),
    // raspberry-pi-nix (nix-community, rpi/default.nix at 3e8100d: lines 29, 44, 63).
    ("raspberry-pi-nix.firmware-migration-service.enable", "c.raspberry-pi-nix.firmware-migration-service.enable or null"),
    ("raspberry-pi-nix.firmware-partition-label", "c.raspberry-pi-nix.firmware-partition-label or null"),
    ("raspberry-pi-nix.uboot.enable", "c.raspberry-pi-nix.uboot.enable or null"),
    // nixos-hardware (0471accf, raspberry-pi/common/firmware.nix:111, :118): an activation script
    // copies the firmware to `path` on every switch.
    ("hardware.raspberry-pi.firmware.enable", "c.hardware.raspberry-pi.firmware.enable or null"),
    ("hardware.raspberry-pi.firmware.path", "c.hardware.raspberry-pi.firmware.path or null"),
    // nvmd/nixos-raspberrypi (05502b5, modules/system/boot/loader/raspberrypi/default.nix:199,
    // :247, :313): manages the firmware partition at `firmwarePath`.
    ("boot.loader.raspberry-pi.enable", "c.boot.loader.raspberry-pi.enable or null"),
    ("boot.loader.raspberry-pi.firmwarePath", "c.boot.loader.raspberry-pi.firmwarePath or null"),
    ("boot.loader.raspberry-pi.bootloader", "c.boot.loader.raspberry-pi.bootloader or null"),
    // systemd-boot's extraFiles (their names only: the values are store paths): copied to the
    // ESP on every switch, and removed when dropped (nixpkgs 0137840,
    // systemd-boot-builder.py, `.extra-files`).
    ("boot.loader.systemd-boot.extraFiles", "builtins.attrNames (c.boot.loader.systemd-boot.extraFiles or { })"),
];

/// `s` of the picks: paths, alone or in a list, as strings.
pub const TO_STRINGS: &str = "v: if builtins.isList v then map (x: if builtins.isPath x then toString x else x) v else if builtins.isPath v then toString v else v";

/// The `--apply` function (of `config`), on one line.
pub fn apply() -> String {
    let fields: String = PICKS
        .iter()
        .map(|(name, expr)| format!("\"{name}\" = {expr}; "))
        .collect();
    format!("c: let s = {TO_STRINGS}; in {{ {fields}}}")
}

/// The options of one node: option name -> value (null where the node does not set it and no
/// module it imports declares it).
#[derive(Debug, Clone, Default)]
pub struct Options(pub Map<String, Value>);

impl Options {
    /// The JSON the apply gives (or `--options-json`): an object whose keys are the option
    /// names. Unknown keys are refused (a misspelt name would silently check nothing).
    pub fn from_json(v: Value, origin: &str) -> Result<Self> {
        let Value::Object(m) = v else {
            bail!("{origin}: the options are not a JSON object");
        };
        if let Some(k) = m.keys().find(|k| !PICKS.iter().any(|(n, _)| n == k)) {
            bail!(
                "{origin}: '{}' is not an option the doctor reads (it reads: {})",
                crate::util::text::printable(k),
                PICKS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            );
        }
        Ok(Options(m))
    }

    pub fn get(&self, name: &str) -> &Value {
        self.0.get(name).unwrap_or(&Value::Null)
    }

    pub fn flag(&self, name: &str) -> Option<bool> {
        self.get(name).as_bool()
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).as_str()
    }

    /// A list of strings (modules, keys): empty when unset.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `fileSystems.<mount>`: (device, fsType).
    pub fn file_system(&self, mount: &str) -> Option<(Option<&str>, Option<&str>)> {
        let f = self.get("fileSystems").get(mount)?;
        Some((
            f.get("device").and_then(Value::as_str),
            f.get("fsType").and_then(Value::as_str),
        ))
    }

    /// Whether any file system is ZFS, or ZFS is among the supported ones.
    pub fn uses_zfs(&self) -> bool {
        self.list("boot.supportedFilesystems")
            .iter()
            .any(|f| f == "zfs")
            || self
                .get("fileSystems")
                .as_object()
                .is_some_and(|m| m.values().any(|f| f.get("fsType") == Some(&"zfs".into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apply_names_every_option_once_and_unknown_keys_are_refused() {
        let a = apply();
        for (name, _) in PICKS {
            assert_eq!(a.matches(&format!("\"{name}\" =")).count(), 1, "{name}");
        }
        let bad = serde_json::json!({ "boot.loader.systemd-boot.enabled": true });
        let e = Options::from_json(bad, "x.json").unwrap_err().to_string();
        assert!(e.contains("systemd-boot.enabled"), "{e}");
        assert!(Options::from_json(serde_json::json!([1]), "x").is_err());
    }
}
