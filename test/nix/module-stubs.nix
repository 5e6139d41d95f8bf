# Stub declarations of the NixOS options nix/module.nix and nix/modules/*.nix
# set, and a small stub `pkgs`, for the module tests that evaluate one
# configuration at a time (test/*-module.test.ts). One place: a module that
# starts setting another NixOS option adds its stub here.
{ lib }:
let
  inherit (lib) mkOption types;
  drv = name: stub: {
    type = "derivation";
    inherit name stub;
    outPath = "/nix/store/${lib.strings.replicate 32 "x"}-${name}";
  };
  list = mkOption {
    type = types.listOf types.unspecified;
    default = [ ];
  };
  freeform = types.submodule { freeformType = types.attrsOf types.unspecified; };
in
{
  pkgs = {
    ogygia = drv "ogygia" { } // {
      meta.mainProgram = "ogygia";
    };
    nettools = drv "net-tools" { };
    openssh = drv "openssh" { };
    systemd = drv "systemd" { };
    nix = drv "nix" { };
    nebula = drv "nebula" { };
    coreutils = drv "coreutils" { };
    formats.toml =
      { }:
      {
        type = types.attrsOf types.anything;
        generate = name: value: drv name { inherit value; };
      };
    runCommand =
      name: env: script:
      drv name { inherit env script; };
    writeTextFile =
      {
        name,
        text,
        destination ? "",
        ...
      }:
      drv name { inherit text; };
  };

  stubs.options = {
    assertions = list;
    environment.systemPackages = list;
    environment.pathsToLink = list;
    environment.variables = mkOption {
      type = types.attrsOf types.str;
      default = { };
    };
    system.configurationRevision = mkOption {
      type = types.nullOr types.str;
      default = null;
    };
    systemd.services = mkOption {
      default = { };
      type = types.attrsOf (
        types.submodule {
          freeformType = types.attrsOf types.unspecified;
          options = {
            path = list;
            wantedBy = list;
            wants = list;
            after = list;
            restartTriggers = list;
            serviceConfig = mkOption {
              type = types.attrsOf types.unspecified;
              default = { };
            };
          };
        }
      );
    };
    nix.settings = mkOption {
      default = { };
      type = types.submodule {
        freeformType = types.attrsOf types.unspecified;
        options = {
          substituters = list;
          trusted-public-keys = list;
          trusted-users = list;
        };
      };
    };
    networking.firewall.allowedTCPPorts = list;
    users.users = mkOption {
      type = types.attrsOf freeform;
      default = { };
    };
    users.groups = mkOption {
      type = types.attrsOf freeform;
      default = { };
    };
    services.openssh.enable = mkOption {
      type = types.bool;
      default = false;
    };
    nix.distributedBuilds = mkOption {
      type = types.bool;
      default = false;
    };
    services.nebula.networks = mkOption {
      type = types.attrsOf freeform;
      default = { };
    };
  };
}
