# Every node's golden media as one derivation, built with builtins.derivation alone: no nixpkgs,
# no root, no loop device, no emulation. Nix evaluates each node's config (nix/eval.nix: the
# plain values of disko.devices and the options `pi-burn doctor` checks) and hands it to
# `pi-burn images --eval-json`; no nix runs inside the build. The firmware zip is a fixed-output
# fetch (<nix/fetchurl.nix>) pinned by the zip's SHA-256, or the zip you give; pi-burn checks it
# against the manifest again.
#
# Output: NODE-sdcard.img.zst, NODE-ssd.img.zst (and eeprom.img.zst / NODE-eeprom.img.zst when
# pi-burn.toml asks for EEPROM cards), each with the .bmap of its raw image, and SHA256SUMS.
# Byte-reproducible: `nix-build --check` rebuilds it bit for bit.
{
  # A directory holding bin/pi-burn (the flake's packages.SYSTEM.default, or any build of it).
  pi-burn,
  # The cluster flake's outputs (`self` in it, or `builtins.getFlake`): its nixosConfigurations,
  # and its source (outPath) holding hosts/NODE/disk-config.nix and pi-burn.toml.
  flake,
  # The release zip (a path); null: fetched from the manifest's URL with its zip pin.
  firmwareZip ? null,
  # The zip's SHA-256 (hex or SRI): pins a zip the manifest does not pin (a custom build) and
  # makes the fetch possible for a release the manifest pins only by its NAR hash.
  sha256 ? null,
  # A firmware manifest; null: pi-burn's own (the repository's firmware-manifest.toml).
  manifest ? null,
  system ? builtins.currentSystem,
  # The board and release (null: the manifest's default for the board).
  board ? "rpi4",
  firmware ? null,
  # Only these nodes (null: every node of the cluster, as `pi-burn images` picks them).
  nodes ? null,
  # "zstd", or null for raw images (2 GiB an SSD image: mind the store).
  compress ? "zstd",
  # Every SSD image's size (null: the disk's imageSize, else disko's 2G).
  ssdSize ? null,
}:
let
  src = flake.outPath;
  manifestFile = if manifest == null then ../firmware-manifest.toml else manifest;
  parsed = builtins.fromTOML (builtins.readFile manifestFile);
  boardEntry = parsed.boards.${board} or (throw "pi-burn images: the manifest has no board ${board}");
  version = if firmware == null then boardEntry.default else firmware;
  matching = builtins.filter (r: r.version == version) boardEntry.releases;
  release =
    if matching == [ ] then throw "pi-burn images: the manifest has no ${board} release ${version}"
    else builtins.head matching;
  zipPin = if sha256 != null then sha256 else release.sha256 or null;
  zip =
    if firmwareZip != null then firmwareZip
    else if zipPin == null then
      throw ("pi-burn images: the manifest pins ${board} ${version} by the NAR hash of its unpacked "
        + "tree only; a fixed-output fetch of the zip needs the zip's own SHA-256: pass sha256 = "
        + "\"...\" (`nix-prefetch-url ${release.url}` prints it) or firmwareZip = ./the-release.zip")
    else import <nix/fetchurl.nix> {
      url = release.url;
      sha256 = zipPin;
    };
  hostDirs = builtins.readDir (src + "/hosts");
  hosts = builtins.filter
    (h: hostDirs.${h} == "directory" && builtins.pathExists (src + "/hosts/${h}/disk-config.nix"))
    (builtins.attrNames hostDirs);
  configs = flake.nixosConfigurations or { };
  wanted = if nodes == null then hosts else nodes;
  evaluated = builtins.listToAttrs (map
    (n: { name = n; value = import ./eval.nix configs.${n}.config; })
    (builtins.filter (n: configs ? ${n}) wanted));
  # Data for pi-burn, not paths it needs: no store path of the configs is an input.
  evalJson = builtins.toFile "pi-burn-eval.json"
    (builtins.unsafeDiscardStringContext (builtins.toJSON evaluated));
  opt = flag: value: if value == null then [ ] else [ flag (toString value) ];
in
builtins.derivation {
  name = "pi-burn-images";
  inherit system;
  builder = "${pi-burn}/bin/pi-burn";
  args = [ "--quiet" "images" "--flake" src "--eval-json" evalJson "--out" (placeholder "out")
    "--firmware-zip" zip "--board" board "--firmware" version "--offline" ]
    # Without a manifest of your own, pi-burn's built-in one (the file read above, when pi-burn
    # is built from this source): the card then records none, as outside Nix.
    ++ opt "--manifest" manifest
    # In hex, pi-burn checks it too (a release the manifest does not pin needs it).
    ++ opt "--sha256" (if sha256 != null && builtins.match "[0-9a-fA-F]{64}" sha256 != null then sha256 else null)
    ++ opt "--compress" compress
    ++ opt "--ssd-size" ssdSize
    ++ builtins.concatMap (n: [ "--node" n ]) (if nodes == null then [ ] else nodes);
  # pi-burn's firmware cache is never read with --firmware-zip; HOME only names it.
  HOME = "/homeless-shelter";
}
