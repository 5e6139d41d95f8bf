# Automated updates in waves with health-gated rollback (docs/updates.md).
#
# `ogygia.update.enable`: the `ogygia-update` agent applies the fleet's
# rollouts to this host. `[ogygia.update]` goes into the CLI configuration
# (and is checked by `ogygia config check` with the rest). The service is
# never restarted or stopped by switch-to-configuration (restartIfChanged =
# false, stopIfChanged = false): it runs the switch itself, and a restart
# mid-update would count as its own crash and roll back.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkEnableOption mkIf mkOption types;

  cfg = config.ogygia;
  cliConfigPath = "/run/current-system/sw/share/ogygia/config.toml";
in
{
  options.ogygia.update = {
    enable = mkEnableOption "the ogygia-update agent: this host follows the fleet's rollouts";
    substituters = mkOption {
      type = types.listOf types.str;
      default = [ "http://127.0.0.1:35742" ];
      description = "Binary caches system paths are realised from, in order (the local ogygia-irisd first).";
    };
    trustedPublicKeys = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "fleet-1:AAAA..." ];
      description = "Keys a system path must be signed by; empty: Nix's own trusted-public-keys.";
    };
    probes = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "systemctl is-active nginx" ];
      description = "Shell commands that must exit 0 after an activation.";
    };
    httpProbes = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "http://127.0.0.1:8080/health" ];
      description = "URLs that must answer a 2xx status after an activation.";
    };
    checkUnits = mkOption {
      type = types.bool;
      default = true;
      description = "Count failed systemd units as unhealthy.";
    };
    healthDeadlineSeconds = mkOption {
      type = types.ints.between 1 86400;
      default = 120;
      description = "Seconds within which the new system must be healthy, else it is rolled back.";
    };
    reboot = mkOption {
      type = types.enum [
        "never"
        "always"
        "window"
      ];
      default = "never";
      description = ''
        A release that changes the kernel, initrd or kernel modules: "never" activates it
        now and leaves the reboot to the operator; "always" makes it the boot default and
        reboots into it, checking health after the boot; "window" does so within rebootWindow.
      '';
    };
    rebootWindow = mkOption {
      type = types.strMatching "([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-4]):[0-5][0-9]";
      default = "02:00-04:00";
      description = "Local-time window of reboot = \"window\" (may span midnight).";
    };
    rebootCommand = mkOption {
      type = types.nonEmptyListOf types.str;
      default = [
        "systemctl"
        "reboot"
      ];
      description = "The command that reboots the host.";
    };
    stateDir = mkOption {
      type = types.strMatching "/.*";
      default = "/var/lib/ogygia/update";
      description = "Where the agent keeps its record of an update in progress (survives reboots).";
    };
  };

  config = mkIf cfg.update.enable {
    assertions = [
      {
        assertion = cfg.enable && (cfg.etcd.endpoints != [ ] || cfg.zookeeper.enable);
        message = "ogygia.update.enable needs ogygia.enable and a backend: set ogygia.etcd.endpoints or ogygia.zookeeper.enable.";
      }
    ];
    ogygia.cliSections.update = {
      state_dir = cfg.update.stateDir;
      substituters = cfg.update.substituters;
      trusted_public_keys = cfg.update.trustedPublicKeys;
      probes = cfg.update.probes;
      http_probes = cfg.update.httpProbes;
      check_units = cfg.update.checkUnits;
      health_deadline_seconds = cfg.update.healthDeadlineSeconds;
      reboot = cfg.update.reboot;
      reboot_window = cfg.update.rebootWindow;
      reboot_command = cfg.update.rebootCommand;
    };
    systemd.services.ogygia-update = {
      description = "Ogygia update agent: the fleet's rollouts, with health-gated rollback";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      restartIfChanged = false;
      stopIfChanged = false;
      # nix and nix-env realise and set the profile; systemctl counts failed units.
      path = [
        (config.nix.package or pkgs.nix)
        pkgs.systemd
        pkgs.nettools
      ];
      serviceConfig = {
        ExecStart = "${lib.getExe' cfg.package "ogygia"} update --config ${cliConfigPath}";
        Restart = "always";
        RestartSec = 5;
        StateDirectory = "ogygia/update";
      };
    };
  };
}
