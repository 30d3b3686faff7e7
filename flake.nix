{
  description = "pi-burn: the boot media of a Raspberry Pi NixOS cluster (the UEFI firmware card, disko's SSD table), byte-reproducible";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
      cargo = (builtins.fromTOML (builtins.readFile ./Cargo.toml)).package;
      package = pkgs: pkgs.rustPlatform.buildRustPackage {
        pname = cargo.name;
        inherit (cargo) version;
        src = self;
        cargoLock.lockFile = ./Cargo.lock;
        # The tests write loop devices, FUSE fakes and Nix builds of their own (root, tools):
        # .ci/run runs them.
        doCheck = false;
        meta = {
          inherit (cargo) description;
          mainProgram = "pi-burn";
          license = with pkgs.lib.licenses; [ mit asl20 ];
        };
      };
    in
    {
      packages = forAll (_: pkgs: rec {
        pi-burn = package pkgs;
        default = pi-burn;
      });

      apps = forAll (system: _: {
        default = {
          type = "app";
          program = "${self.packages.${system}.default}/bin/pi-burn";
        };
      });

      overlays.default = final: _: { pi-burn = package final; };

      # Every node's golden media as one derivation (nix/images.nix): in a cluster flake,
      #   packages.x86_64-linux.images = pi-burn.lib.images { system = "x86_64-linux"; flake = self; };
      # Arguments as nix/images.nix takes them; `pi-burn` defaults to this flake's package.
      lib.images = { system, ... }@args:
        import ./nix/images.nix ({ pi-burn = self.packages.${system}.default; } // args);
    };
}
