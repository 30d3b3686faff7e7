//! Examples for each subcommand: the end of its `--help` and the EXAMPLES of its man page.

/// (subcommand path, [(what it does, the command)]).
pub const EXAMPLES: &[(&str, &[(&str, &str)])] = &[
    ("", &[
        ("Build an SD card image from the pinned firmware release", "pi-burn sdcard --image sdcard.img"),
        ("Every node's SD card and SSD images from the flake", "pi-burn images --flake . --out images/"),
        ("Which disks would pi-burn write to?", "pi-burn devices"),
    ]),
    ("sdcard", &[
        ("An image file from the pinned release (downloaded once, then cached)", "pi-burn sdcard --image sdcard.img"),
        ("A real card, with pi-beta's settings from pi-burn.toml", "pi-burn sdcard /dev/sdX --node pi-beta --flake ."),
        ("Any firmware setting and a config.txt line, from a local zip", "pi-burn sdcard --image sd.img --firmware-zip fw.zip --set RamLimitTo3GB=0 --config-txt hdmi_force_hotplug=1"),
    ]),
    ("ssd", &[
        ("Show the table pi-gamma's disko config gives its SSD, write nothing", "pi-burn ssd --node pi-gamma --dry-run"),
        ("Partition the configured SSD (asks before writing)", "pi-burn ssd --node pi-gamma"),
        ("A 32 GiB image instead of a device", "pi-burn ssd --node pi-gamma --image ssd.img --size 32G"),
    ]),
    ("verify", &[
        ("A pi-burn card, against the record it carries", "pi-burn verify /dev/sdX"),
        ("An image, against a firmware zip", "pi-burn verify --image sdcard.img --firmware-zip RPi4_UEFI_Firmware_v1.50.zip"),
    ]),
    ("flash", &[
        ("A compressed image onto two cards at once, with its block map", "pi-burn flash sdcard.img.zst /dev/sdX /dev/sdY"),
        ("From standard input (asks on the terminal)", "zstd -dc sdcard.img.zst | pi-burn flash - /dev/sdX"),
    ]),
    ("inspect", &[
        ("What is on this card, and is it intact?", "pi-burn inspect /dev/sdX"),
        ("The same for an image, as JSON", "pi-burn --json inspect --image pi-beta-sdcard.img"),
    ]),
    ("images", &[
        ("Every node's pair, with block maps", "pi-burn images --flake . --out images/"),
        ("Offline, from a zip fetched by hand", "pi-burn images --flake . --out images/ --firmware-zip RPi4_UEFI_Firmware_v1.50.zip"),
    ]),
    ("devices", &[
        ("The disks, and why pi-burn would refuse each", "pi-burn devices"),
        ("The same as JSON", "pi-burn devices --json"),
    ]),
    ("firmware", &[
        ("The releases, their pins and the cache", "pi-burn firmware list"),
        ("Download the default release into the cache", "pi-burn firmware fetch"),
        ("Every UEFI setting stored on a card image", "pi-burn firmware settings --image sdcard.img"),
    ]),
    ("firmware list", &[("The releases, their pins and the cache", "pi-burn firmware list")]),
    ("firmware fetch", &[
        ("Download a release into the cache, verified", "pi-burn firmware fetch --firmware v1.50"),
        ("Import a zip fetched by hand, so later runs work --offline", "pi-burn firmware fetch --firmware-zip RPi4_UEFI_Firmware_v1.50.zip"),
    ]),
    ("firmware settings", &[
        ("The settings in a firmware file", "pi-burn firmware settings RPI_EFI.fd"),
        ("The settings on a card", "pi-burn firmware settings /dev/sdX"),
    ]),
    ("firmware verify", &[("Check a zip against the manifest's pins", "pi-burn firmware verify RPi4_UEFI_Firmware_v1.50.zip")]),
    ("firmware export", &[("The customised tree for a TFTP server", "pi-burn firmware export --dir /srv/tftp/pi-beta --node pi-beta --flake .")]),
    ("completions", &[
        ("Bash", "pi-burn completions bash > /etc/bash_completion.d/pi-burn"),
        ("Fish", "pi-burn completions fish > ~/.config/fish/completions/pi-burn.fish"),
    ]),
    ("man", &[
        ("Read the page of one subcommand", "pi-burn man sdcard | man -l -"),
        ("Install every page", "pi-burn man --out /usr/local/share/man/man1"),
    ]),
];

/// The examples of `path` ("" for the top level, "firmware fetch" for a nested one).
pub fn of(path: &str) -> &'static [(&'static str, &'static str)] {
    EXAMPLES
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(&[], |(_, e)| e)
}

/// The examples as the end of a `--help`.
pub fn help_text(path: &str) -> Option<String> {
    let ex = of(path);
    if ex.is_empty() {
        return None;
    }
    let mut s = String::from("Examples:\n");
    for (what, cmd) in ex {
        s.push_str(&format!("  # {what}\n  {cmd}\n"));
    }
    Some(s.trim_end().to_string())
}
