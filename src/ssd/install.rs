//! From prepared disks to an installed node: what nixos-anywhere's `--disko-mode` does to each
//! disk of the node's disko config, as disko's and nixos-anywhere's sources say, and the install
//! command that keeps what pi-burn wrote.
//!
//! The model, read in the sources (disko 878ec37, nixos-anywhere 91fc9b7; shared/FACTS.md 11):
//! - nixos-anywhere builds `nixosConfigurations.NODE.config.system.build.${mode}Script`
//!   (src/nixos-anywhere.sh:425 defaults the mode to `disko`, :428 names the attribute, :854 and
//!   :956 build it), runs it, then `nixos-install` onto /mnt (:916).
//! - disko lib/default.nix: `formatScript` is `_create` alone (:879-882), `mountScript` is
//!   `_mount` alone (:884-887), `diskoScript` is `_disko` (:889-894), which is `_legacyDestroy`,
//!   `_create`, `_mount` (:1087-1098). `_legacyDestroy` deactivates (wipes) each disk whose
//!   `destroy` is true (:938-958, the filter at :951); `destroy` defaults to true
//!   (lib/types/disk.nix:25).
//! - `_create` of a GPT disk keeps a table it finds (`sgdisk --clear` only when blkid finds
//!   nothing, lib/types/gpt.nix:282-283); a partition that exists makes `--new` fail and the
//!   fallback sets a new partition GUID unless `uuid` pins one, the name, the type and clears the
//!   attributes (:289-321); a filesystem is made only where blkid finds none
//!   (lib/types/filesystem.nix:56-57); a zpool is created when none imports and its devices
//!   carry no signature (lib/types/zpool.nix:298-366).
//!
//! So the first install onto disks pi-burn prepared is nixos-anywhere's default mode with
//! `destroy = false` on those disks: `format` creates and mounts nothing (nixos-install then
//! writes into the installer's RAM), `mount` finds no pool on a fresh SSD.

use super::DiskoDisk;

/// nixos-anywhere's `--disko-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disko,
    Format,
    Mount,
}

/// Which of disko's stages run on one disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    /// Wiped (disk-deactivate).
    pub destroy: bool,
    /// Partitions, filesystems and pools created (keeping what exists).
    pub create: bool,
    /// Mounted under /mnt for nixos-install.
    pub mount: bool,
}

/// What `mode` does to a disk whose `destroy` is `destroy`.
pub fn steps(mode: Mode, destroy: bool) -> Steps {
    match mode {
        Mode::Disko => Steps {
            destroy,
            create: true,
            mount: true,
        },
        Mode::Format => Steps {
            destroy: false,
            create: true,
            mount: false,
        },
        Mode::Mount => Steps {
            destroy: false,
            create: false,
            mount: true,
        },
    }
}

/// How a node is installed onto what pi-burn prepared.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Handoff {
    /// The install command: nixos-anywhere's default mode (never `--disko-mode format` or
    /// `mount` for a first install).
    pub command: String,
    /// Disks pi-burn prepares whose `destroy` is not false: the default mode would wipe them.
    pub needs_destroy_false: Vec<String>,
    /// Where their `destroy = false;` goes.
    pub file: String,
}

impl Handoff {
    /// `prepared`: the disks pi-burn writes for the node (its firmware card when the config has
    /// one, its SSD). `flake`: where its config is (None: a JSON config, no flake to name).
    pub fn new(
        node: &str,
        flake: Option<&str>,
        extra_files: Option<&str>,
        prepared: &[&DiskoDisk],
    ) -> Self {
        let needs: Vec<String> = prepared
            .iter()
            .filter(|d| steps(Mode::Disko, d.destroy).destroy)
            .map(|d| d.attr.clone())
            .collect();
        let command = match flake {
            Some(f) => format!(
                "nixos-anywhere --flake {f}#{node}{} --target-host root@<{node}'s address>",
                extra_files
                    .map(|x| format!(" --extra-files {x}"))
                    .unwrap_or_default()
            ),
            None => "nixos-anywhere (its default disko mode)".to_string(),
        };
        Handoff {
            command,
            needs_destroy_false: needs,
            file: match flake {
                Some(_) => format!("hosts/{node}/disk-config.nix"),
                None => "the node's disko config".into(),
            },
        }
    }

    /// What to add first, if anything, in one line.
    pub fn before(&self) -> Option<String> {
        if self.needs_destroy_false.is_empty() {
            return None;
        }
        Some(format!(
            "add `destroy = false;` to disko.devices.disk.{{{}}} in {} (or the module that defines them): nixos-anywhere's default mode wipes every disk whose destroy is not false (disko lib/default.nix:951), what pi-burn wrote included, and --disko-mode format installs nothing (it creates and mounts nothing: lib/default.nix:879; nixos-install then writes into the installer's RAM)",
            self.needs_destroy_false.join(", "),
            self.file
        ))
    }

    /// The lines to print: what to add, then the command.
    pub fn lines(&self) -> Vec<String> {
        let mut v = vec![];
        if let Some(b) = self.before() {
            v.push(format!("before installing, {b}; then:"));
        } else {
            v.push("install, keeping what pi-burn wrote (its disks have destroy = false: disko's default mode keeps their partitions and filesystems, makes the pool, mounts them):".to_string());
        }
        v.push(format!("  {}", self.command));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_default_mode_with_destroy_false_keeps_and_installs() {
        // The model, stage by stage (see the module's sources).
        let s = |m, d| {
            let s = steps(m, d);
            (s.destroy, s.create, s.mount)
        };
        assert_eq!(s(Mode::Disko, true), (true, true, true));
        assert_eq!(s(Mode::Disko, false), (false, true, true));
        assert_eq!(s(Mode::Format, true), (false, true, false));
        assert_eq!(s(Mode::Format, false), (false, true, false));
        assert_eq!(s(Mode::Mount, true), (false, false, true));
        // What installs (mounts for nixos-install) and keeps a prepared disk: only one.
        let keeps_and_installs: Vec<(Mode, bool)> = [Mode::Disko, Mode::Format, Mode::Mount]
            .into_iter()
            .flat_map(|m| [(m, true), (m, false)])
            .filter(|&(m, d)| {
                let st = steps(m, d);
                !st.destroy && st.create && st.mount
            })
            .collect();
        assert_eq!(keeps_and_installs, [(Mode::Disko, false)]);
    }
}
