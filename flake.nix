{
  description = "Ogygia: fleet tooling for NixOS (revision tracking, fleet status, a peer-to-peer binary cache)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      overlays.default = final: _prev: {
        ogygia = final.callPackage ./nix/package.nix { };
      };

      packages = forAllSystems (pkgs: rec {
        ogygia = pkgs.callPackage ./nix/package.nix { };
        default = ogygia;
      });

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${pkgs.system}.ogygia}/bin/ogygia";
          meta.description = "ogygia: which revision runs where";
        };
      });

      nixosModules.default = import ./nix/module.nix;

      checks = forAllSystems (pkgs: {
          package = self.packages.${pkgs.system}.ogygia;
          # The module evaluated for the README's example configurations.
          module-eval = import ./nix/tests/eval.nix {
            inherit pkgs;
            module = self.nixosModules.default;
          };
          # Two NixOS machines: etcd, publish and irisd on both (needs KVM).
          vm = import ./nix/tests/vm.nix {
            inherit pkgs;
            module = self.nixosModules.default;
            overlay = self.overlays.default;
          };
        }
      );

      formatter = forAllSystems (pkgs: pkgs.nixfmt);
    };
}
