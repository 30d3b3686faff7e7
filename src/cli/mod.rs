//! The command line: clap definitions only. Doc comments are the help text.

pub mod examples;
pub mod values;

pub use values::{MbrType, SectorSize, Sha256Arg, Size};

pub use crate::disk::geometry::TableKind;
pub use crate::ssd::EvalMode;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Prepares the boot media of a Raspberry Pi NixOS cluster: UEFI firmware SD cards and
/// disko-style USB SSD partition tables, as devices or byte-reproducible image files.
#[derive(Debug, Parser)]
#[command(
    name = "pi-burn",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Print one JSON object on stdout instead of text (failures too).
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(long, short, global = true, help_heading = "Global options")]
    pub quiet: bool,
    /// Say more about each step.
    #[arg(long, short, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the UEFI firmware SD card: GPT (or MBR), one FAT32 partition, the verified firmware.
    Sdcard(SdcardArgs),
    /// Give a node's USB SSD the GPT its disko config describes, stale signatures wiped.
    Ssd(SsdArgs),
    /// Read a card or image back and compare its table and every file with the firmware.
    Verify(VerifyArgs),
    /// Write an image (raw, or gzip/xz/zstd, or - for stdin) onto one or more devices, sparse
    /// with its block map, GPT moved to a bigger device's end, verified by reading back.
    Flash(FlashArgs),
    /// Show what a pi-burn card is (its record) and check its table and every file against it,
    /// without the zip (exit 3 naming each changed or missing file).
    Inspect(InspectArgs),
    /// Write every node's SD card image and SSD image (each with its block map) into one
    /// directory, from the flake's hosts/ and pi-burn.toml.
    Images(ImagesArgs),
    /// List whole disks, and whether pi-burn would write to each (and why not).
    Devices,
    /// Make the EEPROM bootloader update card: recovery.bin and the pinned bootloader release
    /// with the cluster's bootconf.txt settings in it, on an MBR FAT32 card.
    Eeprom(EepromArgs),
    /// Make each node's SSH host key and initrd SSH host key before its first boot, in the
    /// tree nixos-anywhere's --extra-files copies onto it; print what secrets.nix and
    /// known_hosts need.
    Keys(KeysArgs),
    /// Check each node's NixOS config against the media pi-burn makes for it (the card, the
    /// SSD, pi-burn.toml's settings) and print the install that keeps them; exit 3 on an error.
    Doctor(DoctorArgs),
    /// Test whether a card or drive holds what it claims (a counterfeit does not), without
    /// changing its content: every block the probe writes is saved first and put back.
    Probe(ProbeArgs),
    /// Firmware releases: list them, fetch one into the cache, or check a local zip.
    #[command(subcommand)]
    Firmware(FirmwareCommand),
    /// Print a shell completion script.
    Completions {
        /// The shell: bash, zsh or fish.
        #[arg(value_enum)]
        shell: Option<Shell>,
    },
    /// Print a man page (roff): pi-burn's, or one subcommand's; --out writes them all.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (e.g. `sdcard`, `firmware fetch`).
    #[arg(value_name = "SUBCOMMAND", conflicts_with = "out")]
    pub subcommand: Vec<String>,
    /// Write every page (pi-burn.1, pi-burn-sdcard.1, pi-burn-firmware-fetch.1 ...) into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum FirmwareCommand {
    /// List the boards and releases of the manifest: pins, cache state, defaults.
    List {
        /// Read this manifest instead of the built-in one.
        #[arg(long, value_name = "PATH")]
        manifest: Option<PathBuf>,
    },
    /// Download a release (or --firmware-url) into the cache, verified.
    Fetch(FetchArgs),
    /// List every UEFI setting the Pi 4 firmware reads, with the value stored in a firmware file
    /// (RPI_EFI.fd), on a card (DEVICE) or in a card image (--image), or "(default N)".
    Settings(SettingsArgs),
    /// Check a local zip against the manifest and print its hashes (exit 3 on a mismatch).
    Verify {
        /// The zip to check.
        path: PathBuf,
        #[command(flatten)]
        pin: PinArgs,
    },
    /// Write the verified firmware tree, settings and config.txt edits applied, into a
    /// directory (for a TFTP server: Pi 4 network boot).
    Export(ExportArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["file", "image"]))]
pub struct SettingsArgs {
    /// A firmware file (RPI_EFI.fd) or a card (whole-disk block device).
    #[arg(value_name = "FILE|DEVICE")]
    pub file: Option<PathBuf>,
    /// A card image file.
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    /// Whose firmware's settings to list: rpi4 or rpi5 [default: a card's record's board, else
    /// rpi4].
    #[arg(long)]
    pub board: Option<String>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["device", "image"]))]
pub struct InspectArgs {
    /// The card (whole-disk block device).
    #[arg(value_name = "DEVICE")]
    pub device: Option<PathBuf>,
    /// A card image file.
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    /// Check the record's release against this manifest instead of the built-in one.
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The directory to create (it must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Take the settings of this node from FLAKE/pi-burn.toml.
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// The flake holding hosts/ and pi-burn.toml (with --node).
    #[arg(long, value_name = "DIR", default_value = ".", requires = "node")]
    pub flake: PathBuf,
    #[command(flatten)]
    pub firmware: FirmwareArgs,
    #[command(flatten)]
    pub custom: CustomArgs,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// The flake: every hosts/NODE/disk-config.nix is a node; pi-burn.toml gives its settings.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub flake: PathBuf,
    /// Where to write NODE-sdcard.img and NODE-ssd.img (and their .bmap files).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Size of every SSD image [default: the disk's imageSize, else disko's default 2G].
    #[arg(long, value_name = "SIZE")]
    pub ssd_size: Option<Size>,
    /// Replace existing files in --out even when they hold no partition table.
    #[arg(long)]
    pub force: bool,
    /// How to evaluate the nodes' disko configs (as for `ssd --eval`).
    #[arg(long, value_enum, default_value = "auto")]
    pub eval: EvalMode,
    /// The nodes' configs as Nix evaluated them: a JSON object NODE -> nix/eval.nix of
    /// nixosConfigurations.NODE.config (what lib.images hands over); no nix runs.
    #[arg(long, value_name = "FILE", conflicts_with = "eval")]
    pub eval_json: Option<PathBuf>,
    /// Write each image zstd-compressed (NODE-sdcard.img.zst, with the raw image's .bmap).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub compress: Option<Compress>,
    /// Only this node (repeatable) [default: every node of the cluster: those in pi-burn.toml,
    /// or whose disko config has the firmware card].
    #[arg(long, value_name = "NODE")]
    pub node: Vec<String>,
    /// Write the images even when a node's NixOS config does not fit them (`pi-burn doctor`).
    #[arg(long)]
    pub allow_config_errors: bool,
    #[command(flatten)]
    pub firmware: FirmwareArgs,
    #[command(flatten)]
    pub custom: CustomArgs,
}

/// Which firmware, and how it is pinned: all that `firmware verify` (which never downloads)
/// takes, and part of every command that obtains firmware.
#[derive(Debug, Args, Clone)]
pub struct PinArgs {
    /// Board whose firmware to use (a board of the manifest: rpi4, rpi5) [default: rpi4, or
    /// the board of --from-record's card].
    #[arg(long)]
    pub board: Option<String>,
    /// Firmware release (default: the board's default in the manifest; with a zip, whichever
    /// pinned release the zip matches).
    #[arg(long, value_name = "VERSION")]
    pub firmware: Option<String>,
    /// Pin the zip yourself: its SHA-256 in hex (a custom build, or a release the manifest does
    /// not pin).
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<Sha256Arg>,
    /// Read this manifest instead of the built-in one.
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<PathBuf>,
    /// Refuse archives that unpack to more than this (K/M/G suffixes).
    #[arg(long, value_name = "SIZE", default_value = "256M")]
    pub max_unpacked: Size,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    #[command(flatten)]
    pub firmware: FirmwareArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").args(["device", "image"]))]
pub struct SsdArgs {
    /// The node whose SSD to prepare (its config is FLAKE/hosts/NODE/disk-config.nix).
    #[arg(long)]
    pub node: String,
    /// The whole-disk block device (default: the config's `device`, when it exists here).
    #[arg(value_name = "DEVICE")]
    pub device: Option<PathBuf>,
    /// Write a sparse image file of --size instead.
    #[arg(long, value_name = "PATH", requires = "size")]
    pub image: Option<PathBuf>,
    /// Replace an existing --image file even when it holds no partition table.
    #[arg(long, requires = "image")]
    pub force: bool,
    /// Size of the image (K/M/G/T powers of 1024; KB/MB/GB/TB powers of 1000, as a "500 GB" disk).
    #[arg(long, value_name = "SIZE", requires = "image")]
    pub size: Option<Size>,
    /// Logical sector size of an image (512 or 4096; default 512). A device's own is always used.
    #[arg(long, value_name = "BYTES", requires = "image")]
    pub sector_size: Option<SectorSize>,
    #[command(flatten)]
    pub config: DiskoArgs,
    /// Which disk of the config (default: the one that is not the SD card).
    #[arg(long, value_name = "NAME")]
    pub disk: Option<String>,
    /// Leave the ESP unformatted (disko formats it).
    #[arg(long)]
    pub no_format: bool,
    /// Seed for the GUIDs and the FAT volume id (default: node and disk name).
    #[arg(long)]
    pub seed: Option<String>,
    /// Put the verified firmware in the SSD's ESP (partition 1), with the node's UEFI settings,
    /// config.txt edits and card record: the node boots from the SSD alone (a bootloader whose
    /// BOOT_ORDER tries USB), no SD card [default: pi-burn.toml's ssd_firmware].
    #[arg(long, conflicts_with = "no_format")]
    pub with_firmware: bool,
    #[command(flatten)]
    pub firmware: FirmwareArgs,
    #[command(flatten)]
    pub custom: CustomArgs,
    #[command(flatten)]
    pub device_opts: DeviceArgs,
}

/// Where a node's disko config comes from.
#[derive(Debug, Args, Clone)]
pub struct DiskoArgs {
    /// The flake (or any directory) holding hosts/NODE/disk-config.nix.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub flake: PathBuf,
    /// How to evaluate the node's disko config: auto (built-in when the file is within its
    /// subset, else the flake, else nix-instantiate), builtin (the literal subset), flake
    /// (nix eval of nixosConfigurations.NODE.config.disko.devices: exact), nix (nix-instantiate
    /// on the single file).
    #[arg(long, value_enum, default_value = "auto")]
    pub eval: EvalMode,
    /// Read the JSON of `disko.devices` from this file instead.
    #[arg(long, value_name = "FILE", conflicts_with = "builtin_layout")]
    pub disko_json: Option<PathBuf>,
    /// Use the cluster's documented layout instead of a config file: `default` (BOOT 1G EF00,
    /// zfs 100%; the SD card's FIRMWARE 512M EF00).
    #[arg(long = "layout", value_name = "NAME", value_enum)]
    pub builtin_layout: Option<BuiltinLayout>,
    /// Write even when the node's NixOS config does not fit its media (`pi-burn doctor`).
    #[arg(long)]
    pub allow_config_errors: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compress {
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuiltinLayout {
    Default,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["device", "image"]))]
pub struct SdcardArgs {
    #[command(flatten)]
    pub target: CardTarget,
    /// Make the card another card (or card image) says it is, from its record: the firmware
    /// (verified against the record's hashes), node, settings, config.txt edits and table.
    /// Options given beside it override the record's, and the plan names them.
    #[arg(long, value_name = "CARD_OR_IMAGE", conflicts_with = "node")]
    pub from_record: Option<PathBuf>,
    #[command(flatten)]
    pub firmware: FirmwareArgs,
    #[command(flatten)]
    pub layout: LayoutArgs,
    #[command(flatten)]
    pub custom: CustomArgs,
    #[command(flatten)]
    pub device_opts: DeviceArgs,
}

/// What pi-burn changes in the firmware it copies: UEFI settings in RPI_EFI.fd (Raspberry Pi 4)
/// and lines of config.txt. With --node, FLAKE/pi-burn.toml gives defaults these override.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Firmware settings")]
pub struct CustomArgs {
    /// Store a UEFI setting of the --board's firmware (repeatable), range-checked as the
    /// firmware's setup form does; e.g. RamLimitTo3GB=0, SystemTableMode=2, AssetTag=pi-beta,
    /// Timeout=2, Pcie1Settings.MaxLinkSpeed=3 (Pi 5). `pi-burn firmware settings FILE` lists
    /// them all.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = values::parse_assignment)]
    pub set: Vec<String>,
    /// Set or replace a config.txt line (repeatable), keeping every other line; e.g.
    /// hdmi_force_hotplug=1 for a board that boots without a screen.
    #[arg(long = "config-txt", value_name = "KEY=VALUE", value_parser = values::parse_config_txt)]
    pub config_txt: Vec<crate::firmware::configtxt::Edit>,
    /// Limit RAM to 3 GB: the same as --set RamLimitTo3GB=1|0 (the firmware's default is on;
    /// 8 GB nodes want off).
    #[arg(long, value_enum, value_name = "on|off")]
    pub ram_limit_3gb: Option<OnOff>,
    /// Which system tables the firmware hands the OS: the same as --set SystemTableMode=0|1|2
    /// (its default is acpi).
    #[arg(long, value_enum, value_name = "MODE")]
    pub system_table: Option<SystemTable>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SystemTable {
    Acpi,
    #[value(name = "acpi+devicetree")]
    AcpiDevicetree,
    Devicetree,
}

#[derive(Debug, Args)]
pub struct FlashArgs {
    /// The image: raw, gzip, xz or zstd (told by content), or - for standard input.
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// The whole-disk block devices to write.
    #[arg(value_name = "DEVICE", required = true)]
    pub devices: Vec<PathBuf>,
    /// The image's block map (default: IMAGE.bmap, or the name without .gz/.xz/.zst plus .bmap).
    #[arg(long, value_name = "FILE", conflicts_with = "no_bmap")]
    pub bmap: Option<PathBuf>,
    /// Ignore any block map: write a raw file's data extents, or a stream whole.
    #[arg(long)]
    pub no_bmap: bool,
    /// Write data that has no partition table (a bare filesystem image); without it such data
    /// is refused as not a disk image.
    #[arg(long)]
    pub no_table: bool,
    #[command(flatten)]
    pub device_opts: DeviceArgs,
}

/// Where a card goes: a device, or an image file.
#[derive(Debug, Args, Clone)]
pub struct CardTarget {
    /// The whole-disk block device to burn (/dev/sdX, /dev/mmcblkN, /dev/disk/by-id/...).
    #[arg(value_name = "DEVICE")]
    pub device: Option<PathBuf>,
    /// Write an image file at this path instead (created sparse; an existing file is replaced
    /// only on success, and only when it holds a partition table unless --force).
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    /// Replace an existing --image file even when it holds no partition table.
    #[arg(long, requires = "image")]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct EepromArgs {
    #[command(flatten)]
    pub target: CardTarget,
    /// Size of the image [default: 258 MiB: 1 MiB, a 256 MiB FAT32 partition, 1 MiB].
    #[arg(long, value_name = "SIZE", requires = "image")]
    pub size: Option<Size>,
    /// The board whose bootloader to write: rpi4 (BCM2711: Pi 4, 400, CM4) or rpi5 (BCM2712:
    /// Pi 5, 500, CM5) [default: rpi4].
    #[arg(long)]
    pub board: Option<String>,
    /// The bootloader release, by its date (default: the newest the manifest pins for the board).
    #[arg(long, value_name = "DATE")]
    pub release: Option<String>,
    /// Use this local pieeprom-DATE.bin (verified against the manifest's pins; e.g. from
    /// nixpkgs' raspberrypi-eeprom, lib/firmware/raspberrypi/bootloader-2711/default/).
    #[arg(long, value_name = "PATH")]
    pub eeprom_file: Option<PathBuf>,
    /// Use this local recovery.bin (verified against the manifest's pins).
    #[arg(long, value_name = "PATH")]
    pub recovery_file: Option<PathBuf>,
    /// Use this local vl805-VERSION.bin (Pi 4; verified against the manifest's pins).
    #[arg(long, value_name = "PATH")]
    pub vl805_file: Option<PathBuf>,
    /// Set a bootloader property in bootconf.txt (repeatable), checked by type; e.g.
    /// BOOT_UART=1, POWER_OFF_ON_HALT=1, BOOT_ORDER=0xf41. The release's other lines are kept.
    #[arg(long = "bootconf", value_name = "KEY=VALUE")]
    pub bootconf: Vec<String>,
    /// BOOT_ORDER by name, first tried first: sd, net, rpiboot, usb, usb-c, nvme, http, stop,
    /// restart (a restart is added at the end); e.g. sd,usb is 0xf41.
    #[arg(long, value_name = "MODES")]
    pub boot_order: Option<String>,
    /// Take this node's properties from FLAKE/pi-burn.toml ([defaults.eeprom], then
    /// [nodes.NODE.eeprom]).
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// The flake holding hosts/ and pi-burn.toml (with --node).
    #[arg(long, value_name = "DIR", default_value = ".", requires = "node")]
    pub flake: PathBuf,
    /// Read this manifest instead of the built-in one.
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<PathBuf>,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub device_opts: DeviceArgs,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// The flake: every hosts/NODE/disk-config.nix is a node.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub flake: PathBuf,
    /// Where to keep the keys: OUT/NODE/etc/ssh/... (outside the flake's git work tree unless
    /// ignored by git: a flake's files go into the world-readable Nix store).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Only this node (repeatable) [default: every node of the cluster].
    #[arg(long, value_name = "NODE")]
    pub node: Vec<String>,
    /// How to evaluate the nodes' configs (as for `ssd --eval`).
    #[arg(long, value_enum, default_value = "auto")]
    pub eval: EvalMode,
    /// Replace existing keys (each replaced one is named with its old fingerprint).
    #[arg(long)]
    pub rotate: bool,
    /// The port of the initrd's SSH server, for its known_hosts line.
    #[arg(long, value_name = "PORT", default_value_t = 2222)]
    pub initrd_port: u16,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The flake: hosts/NODE/disk-config.nix, pi-burn.toml, nixosConfigurations.NODE.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub flake: PathBuf,
    /// Only this node (repeatable) [default: every node of the cluster].
    #[arg(long, value_name = "NODE")]
    pub node: Vec<String>,
    /// Read the node's options from this JSON instead of evaluating the flake (on a machine
    /// without Nix; `nix eval --json FLAKE#nixosConfigurations.NODE.config --apply ...` makes it,
    /// see the README); needs one --node.
    #[arg(long, value_name = "FILE", requires = "node")]
    pub options_json: Option<PathBuf>,
    /// The board whose firmware settings pi-burn.toml names (rpi4, rpi5) [default: rpi4].
    #[arg(long)]
    pub board: Option<String>,
    /// Read this manifest instead of the built-in one (for the release in the cache).
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The whole-disk block device to test.
    #[arg(value_name = "DEVICE")]
    pub device: PathBuf,
    /// Do not ask: the device name is taken as typed (needed without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Allow a disk that is neither removable nor on USB or MMC.
    #[arg(long)]
    pub allow_fixed_disk: bool,
}

/// Safety options for block devices.
#[derive(Debug, Args, Clone)]
pub struct DeviceArgs {
    /// Do not ask: the device name is taken as typed (needed without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Show the device and the plan, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a disk that is neither removable nor on USB or MMC.
    #[arg(long)]
    pub allow_fixed_disk: bool,
    /// Skip reading the written ranges back.
    #[arg(long)]
    pub no_verify: bool,
    /// Skip the capacity probe (about 4 MiB written at random places first, to find a
    /// counterfeit that holds less than it claims).
    #[arg(long)]
    pub no_probe: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["device", "image"]))]
pub struct VerifyArgs {
    /// The card (whole-disk block device) to check.
    #[arg(value_name = "DEVICE")]
    pub device: Option<PathBuf>,
    /// The image file to check.
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    #[command(flatten)]
    pub firmware: FirmwareArgs,
    #[command(flatten)]
    pub layout: LayoutArgs,
    #[command(flatten)]
    pub custom: CustomArgs,
}

/// Which firmware, and how it is pinned.
#[derive(Debug, Args, Clone)]
pub struct FirmwareArgs {
    #[command(flatten)]
    pub pin: PinArgs,
    /// Use this local release zip (verified against the manifest before anything is written).
    #[arg(long, value_name = "PATH", conflicts_with = "firmware_url")]
    pub firmware_zip: Option<PathBuf>,
    /// Download the zip from this URL instead of the manifest's (a mirror, a custom build);
    /// needs --sha256. https only (plain http only to loopback addresses).
    #[arg(long, value_name = "URL", requires = "sha256")]
    pub firmware_url: Option<String>,
    #[command(flatten)]
    pub net: NetArgs,
}

/// How downloads go.
#[derive(Debug, Args, Clone)]
pub struct NetArgs {
    /// Use the cache only; never touch the network.
    #[arg(long)]
    pub offline: bool,
    /// Seconds to wait for a connection, or for any read, before retrying.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
    /// Retries after transient download failures (resets, timeouts, HTTP 5xx), with backoff.
    /// A host name that does not resolve is not retried.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub retries: u32,
    /// Seconds after which no new download attempt starts: the bound on the whole download.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub max_time: u64,
}

impl NetArgs {
    /// The download options these flags give.
    pub fn fetch_options(&self) -> crate::firmware::fetch::FetchOptions {
        use std::time::Duration;
        crate::firmware::fetch::FetchOptions {
            connect_timeout: Duration::from_secs(self.timeout.max(1)),
            read_timeout: Duration::from_secs(self.timeout.max(1)),
            retries: self.retries,
            max_bytes: u64::MAX,
            total: Duration::from_secs(self.max_time.max(1)),
        }
    }
}

/// The SD card's layout.
#[derive(Debug, Args, Clone)]
pub struct LayoutArgs {
    /// Partition table: gpt (what the cluster's disko config describes) or mbr (what pftf's
    /// README recommends; type 0xef unless --mbr-type) [default: gpt].
    #[arg(long, value_enum)]
    pub table: Option<TableKind>,
    /// MBR partition type byte with --table mbr: 0xef (EFI) or 0x0c (FAT32 LBA, which the
    /// boot ROM's recovery mode also reads) [default: 0xef].
    #[arg(long, value_name = "BYTE")]
    pub mbr_type: Option<MbrType>,
    /// GPT partition type: an sgdisk code (EF00, 0700) or a GUID [default: EF00].
    #[arg(long, value_name = "CODE")]
    pub gpt_type: Option<String>,
    /// Allow a firmware partition type the Pi's boot loader is not known to boot (anything but
    /// EF00/0700 under GPT, 0xef/0x0c/0x0e/0x0b under MBR).
    #[arg(long)]
    pub allow_unbootable_type: bool,
    /// Make a GPT card even when the firmware's start4.elf was built before 2025-01-16 (it does
    /// not boot under an EEPROM of 2025-02-11 or newer, rpi-eeprom #668; fine on older ones).
    #[arg(long)]
    pub allow_old_start4: bool,
    /// Logical sector size of an image (512 or 4096; default 512). A device's own is always used.
    #[arg(long, value_name = "BYTES")]
    pub sector_size: Option<SectorSize>,
    /// Image size (K/M/G/T powers of 1024; KB/MB/GB/TB powers of 1000). Default: 1 MiB +
    /// partition + 1 MiB.
    #[arg(long, value_name = "SIZE")]
    pub size: Option<Size>,
    /// Size of the firmware partition [default: 512M].
    #[arg(long, value_name = "SIZE")]
    pub partition_size: Option<Size>,
    /// GPT partition name: disko names the cluster's firmware partition disk-sdcard-FIRMWARE
    /// [default: disk-sdcard-FIRMWARE].
    #[arg(long, value_name = "NAME")]
    pub partition_name: Option<String>,
    /// FAT volume label [default: FIRMWARE].
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Seed for the disk and partition GUIDs and the FAT volume id (default: board, firmware
    /// version, partition name and node).
    #[arg(long)]
    pub seed: Option<String>,
    /// Take the partition's name, size and type from this node's disko config (its disk that
    /// mounts /boot/firmware).
    #[arg(long, value_name = "NODE", conflicts_with_all = ["partition_name", "partition_size", "gpt_type"])]
    pub node: Option<String>,
    #[command(flatten)]
    pub config: DiskoArgs,
}

/// The command line with each subcommand's examples at the end of its help.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    fn add(cmd: clap::Command, path: &str) -> clap::Command {
        let mut cmd = match examples::help_text(path) {
            Some(text) => cmd.after_help(text),
            None => cmd,
        };
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        for n in names {
            let sub_path = if path.is_empty() {
                n.clone()
            } else {
                format!("{path} {n}")
            };
            cmd = cmd.mut_subcommand(&n, |c| add(c, &sub_path));
        }
        cmd
    }
    add(Cli::command(), "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
