# What pi-burn reads of a node's NixOS config: the plain values of disko.devices and the
# options `pi-burn doctor` checks, as `pi-burn ... --eval flake` asks `nix eval --apply` for
# them. lib.images (nix/images.nix) hands this, for every node, to `pi-burn images
# --eval-json`. Generated from src/ssd/apply.nix and src/ssd/options.rs: `cargo test` fails
# when it is stale, and `PI_BURN_WRITE_NIX=1 cargo test --lib eval_nix` writes it again.
config: {
  devices = (
    devices:
    let
      pick = names: a:
        builtins.listToAttrs (builtins.concatMap
          (n: if builtins.hasAttr n a then [ { name = n; value = builtins.getAttr n a; } ] else [ ])
          names);
      part = p:
        pick [ "type" "attributes" "priority" "name" "uuid" "label" "size" "alignment" "start" "end" "_index" ] p // {
          hybrid = if (p.hybrid or null) == null then null else pick [ "mbrPartitionType" "mbrBootableFlag" ] p.hybrid;
          content = if (p.content or null) == null then null else pick [ "type" "format" "mountpoint" "extraArgs" ] p.content;
          _options = builtins.attrNames p;
        };
      table = c:
        pick [ "type" "efiGptPartitionFirst" "preCreateHook" "postCreateHook" ] c
        // (if (c.type or null) == "gpt" then {
          partitions = builtins.mapAttrs (_: part) (c.partitions or { });
          _options = builtins.attrNames c;
        } else { });
      disk = d:
        pick [ "type" "device" "name" "imageSize" "destroy" "preCreateHook" "postCreateHook" ] d // {
          content = if (d.content or null) == null then null else table d.content;
        };
    in
    { disk = builtins.mapAttrs (_: disk) (devices.disk or { }); }
  ) config.disko.devices;
  options = (
    c:
    let
      s = v: if builtins.isList v then map (x: if builtins.isPath x then toString x else x) v else if builtins.isPath v then toString v else v;
    in {
      "boot.loader.generic-extlinux-compatible.enable" = c.boot.loader.generic-extlinux-compatible.enable or null;
      "boot.loader.systemd-boot.enable" = c.boot.loader.systemd-boot.enable or null;
      "boot.loader.grub.enable" = c.boot.loader.grub.enable or null;
      "boot.loader.grub.efiSupport" = c.boot.loader.grub.efiSupport or null;
      "boot.loader.efi.canTouchEfiVariables" = c.boot.loader.efi.canTouchEfiVariables or null;
      "boot.loader.efi.efiSysMountPoint" = c.boot.loader.efi.efiSysMountPoint or null;
      "boot.kernelPackages.kernel.pname" = c.boot.kernelPackages.kernel.pname or null;
      "boot.kernelPackages.kernel.version" = c.boot.kernelPackages.kernel.version or null;
      "boot.kernelParams" = c.boot.kernelParams or null;
      "boot.initrd.availableKernelModules" = c.boot.initrd.availableKernelModules or null;
      "boot.initrd.kernelModules" = c.boot.initrd.kernelModules or null;
      "boot.initrd.network.enable" = c.boot.initrd.network.enable or null;
      "boot.initrd.network.ssh.enable" = c.boot.initrd.network.ssh.enable or null;
      "boot.initrd.network.ssh.hostKeys" = s (c.boot.initrd.network.ssh.hostKeys or null);
      "boot.supportedFilesystems" = s (c.boot.supportedFilesystems or null);
      "networking.hostId" = c.networking.hostId or null;
      "fileSystems" = builtins.mapAttrs (_: f: { device = s (f.device or null); fsType = f.fsType or null; }) (c.fileSystems or { });
      "raspberry-pi-nix.firmware-migration-service.enable" = c.raspberry-pi-nix.firmware-migration-service.enable or null;
      "raspberry-pi-nix.firmware-partition-label" = c.raspberry-pi-nix.firmware-partition-label or null;
      "raspberry-pi-nix.uboot.enable" = c.raspberry-pi-nix.uboot.enable or null;
      "hardware.raspberry-pi.firmware.enable" = c.hardware.raspberry-pi.firmware.enable or null;
      "hardware.raspberry-pi.firmware.path" = c.hardware.raspberry-pi.firmware.path or null;
      "boot.loader.raspberry-pi.enable" = c.boot.loader.raspberry-pi.enable or null;
      "boot.loader.raspberry-pi.firmwarePath" = c.boot.loader.raspberry-pi.firmwarePath or null;
      "boot.loader.raspberry-pi.bootloader" = c.boot.loader.raspberry-pi.bootloader or null;
      "boot.loader.systemd-boot.extraFiles" = builtins.attrNames (c.boot.loader.systemd-boot.extraFiles or { });
    }
  ) config;
}
