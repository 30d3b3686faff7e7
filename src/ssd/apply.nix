# What `nix eval --apply` keeps of disko.devices: plain values only (disko's _create, _pkgs and
# _config hold scripts, functions and derivations), and the option names of each partition and
# table (_options), so that an option pi-burn does not know is refused rather than dropped.
# Comment lines start with '#' and are left out when the expression is passed to nix.
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
