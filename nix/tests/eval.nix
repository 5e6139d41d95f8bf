# `nix flake check`: evaluates the module for every example configuration
# on real NixOS and checks expectations.nix; building it also builds (and so
# checks) the rendered configuration files with the real programs.
{ pkgs, module }:
let
  inherit (pkgs) lib;
  evalSystem =
    modules:
    (import (pkgs.path + "/nixos/lib/eval-config.nix") {
      inherit (pkgs.stdenv.hostPlatform) system;
      modules = [
        {
          nixpkgs.pkgs = pkgs.extend (final: _prev: { ogygia = final.callPackage ../package.nix { }; });
          boot.loader.grub.enable = false;
          fileSystems."/".device = "/dev/null";
          system.stateVersion = lib.trivial.release;
        }
      ]
      ++ modules;
    }).config;
  baseline = evalSystem [ ];
  examples = import ./examples.nix;
  results = lib.mapAttrs (
    name: example:
    let
      config = evalSystem [
        module
        example
      ];
    in
    {
      failures = import ./expectations.nix {
        inherit lib name config baseline;
      };
      # Referencing ExecStart makes this check build the checked config files.
      execStarts = lib.mapAttrsToList (_: s: s.serviceConfig.ExecStart or "") (
        lib.filterAttrs (n: _: lib.hasPrefix "ogygia" n) config.systemd.services
      );
    }
  ) examples;
  failures = lib.concatLists (lib.mapAttrsToList (_: r: r.failures) results);
in
if failures != [ ] then
  throw "ogygia module expectations failed:\n${lib.concatStringsSep "\n" failures}"
else
  pkgs.runCommand "ogygia-module-eval" { } ''
    ${lib.concatMapStringsSep "\n" (s: "echo ${lib.escapeShellArg s}") (
      lib.concatLists (lib.mapAttrsToList (_: r: r.execStarts) results)
    )}
    touch $out
  ''
