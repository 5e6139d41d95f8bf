# Distributed builds from the live fleet (docs: README "Distributed builds").
#
# `ogygia.builder.enable`: this host offers builds. A `nix-builder` user
# that the fleet's key may log in as, trusted by the nix-daemon, and
# `[ogygia.builder]` in the CLI configuration, so `ogygia publish`
# publishes the builder entry under its lease.
#
# `ogygia.builders.enable`: this host builds on the others. The
# `ogygia-builders` service keeps /run/ogygia/nix-machines current from the
# fleet (`ogygia builders --watch`), and the nix-daemon reads it next to
# any static entries (/etc/nix/machines).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkEnableOption
    mkIf
    mkMerge
    mkOption
    optional
    types
    ;

  cfg = config.ogygia;
  machinesFile = "/run/ogygia/nix-machines";
  cliConfigPath = "/run/current-system/sw/share/ogygia/config.toml";
  word = types.strMatching "[A-Za-z0-9_.+-]+";

  builderAddress =
    if cfg.builder.address != null then
      cfg.builder.address
    else if cfg.nebula.ipv4 != null then
      cfg.nebula.ipv4
    else
      null;

  # `[ogygia.builder]`, null values left out (the publisher fills them from the host).
  builderSection = lib.filterAttrs (_: value: value != null) {
    inherit (cfg.builder) user protocol;
    address = builderAddress;
    systems = cfg.builder.systems;
    max_jobs = cfg.builder.maxJobs;
    speed_factor = cfg.builder.speedFactor;
    supported_features = cfg.builder.supportedFeatures;
    mandatory_features = cfg.builder.mandatoryFeatures;
    host_key_file = cfg.builder.hostKeyFile;
  };

  seconds = types.ints.between 1 86400;
in
{
  options.ogygia = {
    builder = {
      enable = mkEnableOption "offering this host's builds to the fleet (published by ogygia publish)";
      user = mkOption {
        type = types.strMatching "[a-z_][a-z0-9_-]*";
        default = "nix-builder";
        description = "The user remote Nix logs in as; created, and trusted by the nix-daemon.";
      };
      authorizedKeys = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "ssh-ed25519 AAAA... fleet-builds" ];
        description = "Public SSH keys allowed to log in as the builder user: the fleet's build key.";
      };
      address = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "Where builders connect (default: the Nebula address, else the host name).";
      };
      protocol = mkOption {
        type = types.enum [
          "ssh-ng"
          "ssh"
        ];
        default = "ssh-ng";
        description = "ssh-ng (nix-daemon --stdio on the builder) or ssh (nix-store --serve).";
      };
      systems = mkOption {
        type = types.nullOr (types.nonEmptyListOf word);
        default = null;
        description = "System types built here (default: Nix's system and extra-platforms).";
      };
      maxJobs = mkOption {
        type = types.nullOr types.ints.positive;
        default = null;
        description = "Builds at once (default: the cores).";
      };
      speedFactor = mkOption {
        type = types.either types.ints.positive types.float;
        default = 1;
        description = "Relative speed: faster builders are listed first.";
      };
      supportedFeatures = mkOption {
        type = types.listOf word;
        default = [ ];
        example = [
          "kvm"
          "big-parallel"
        ];
        description = "System features this builder supports.";
      };
      mandatoryFeatures = mkOption {
        type = types.listOf word;
        default = [ ];
        description = "Features a derivation must ask for to be built here.";
      };
      hostKeyFile = mkOption {
        type = types.str;
        default = "/etc/ssh/ssh_host_ed25519_key.pub";
        description = "The SSH public host key published with the entry, so clients can check it.";
      };
    };

    builders = {
      enable = mkEnableOption "Nix remote builders from the fleet (the ogygia-builders service)";
      sshKey = mkOption {
        # A string, not a path: a path would copy the secret key into the store.
        type = types.nullOr (types.strMatching "/.*");
        default = null;
        example = "/root/.ssh/nix-builder";
        description = "The identity file the nix-daemon (and the probes) log in to builders with.";
      };
      probeIntervalSeconds = mkOption {
        type = seconds;
        default = 60;
        description = "Seconds between probes of a listed builder.";
      };
      backoffBaseSeconds = mkOption {
        type = seconds;
        default = 60;
        description = "Backoff after a first failed probe; then times 3, four steps (Hydra's).";
      };
      metricsListen = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "127.0.0.1:35744";
        description = "Serve Prometheus metrics at http://ADDR:PORT/metrics.";
      };
      machinesFile = mkOption {
        type = types.str;
        readOnly = true;
        default = machinesFile;
        description = "The machines file the service keeps current.";
      };
    };

    # Sections other modules add to the CLI's config.toml.
    cliSections = mkOption {
      type = types.attrsOf types.anything;
      default = { };
      internal = true;
    };
  };

  config = mkMerge [
    (mkIf cfg.builder.enable {
      assertions = [
        {
          assertion = cfg.publish.enable;
          message = "ogygia.builder.enable needs ogygia.publish.enable: the publisher publishes the builder entry under its lease.";
        }
        {
          assertion = cfg.builder.authorizedKeys != [ ];
          message = "ogygia.builder.authorizedKeys is empty: nobody could log in to build here.";
        }
      ];
      ogygia.cliSections.builder = builderSection;
      users.users.${cfg.builder.user} = {
        isSystemUser = true;
        group = cfg.builder.user;
        useDefaultShell = true;
        openssh.authorizedKeys.keys = cfg.builder.authorizedKeys;
      };
      users.groups.${cfg.builder.user} = { };
      nix.settings.trusted-users = [ cfg.builder.user ];
      services.openssh.enable = true;
      # Nix's system and extra-platforms, when `systems` is not set.
      systemd.services.ogygia-publish.path = optional (cfg.builder.systems == null) (
        config.nix.package or pkgs.nix
      );
    })

    (mkIf cfg.builders.enable {
      assertions = [
        {
          assertion = cfg.enable && (cfg.etcd.endpoints != [ ] || cfg.zookeeper.enable);
          message = "ogygia.builders.enable needs ogygia.enable and a backend: set ogygia.etcd.endpoints or ogygia.zookeeper.enable.";
        }
      ];
      systemd.services.ogygia-builders = {
        description = "Ogygia builders: Nix's remote builders from the live fleet";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        # ssh for the probes, `hostname -f` for this host's name.
        path = [
          pkgs.openssh
          pkgs.nettools
        ];
        serviceConfig = {
          ExecStart = lib.concatStringsSep " " (
            [
              "${lib.getExe' cfg.package "ogygia"} builders --watch --config ${cliConfigPath}"
              "--output ${machinesFile}"
              "--probe-interval ${toString cfg.builders.probeIntervalSeconds}"
              "--backoff-base ${toString cfg.builders.backoffBaseSeconds}"
            ]
            ++ optional (cfg.builders.sshKey != null) "--ssh-key ${cfg.builders.sshKey}"
            ++ optional (cfg.builders.metricsListen != null) "--metrics-listen ${cfg.builders.metricsListen}"
          );
          Restart = "on-failure";
          RestartSec = 5;
          # Root reads the key the nix-daemon uses; the file outlives restarts.
          RuntimeDirectory = "ogygia";
          RuntimeDirectoryPreserve = true;
          ProtectSystem = "strict";
          ProtectHome = "read-only";
          PrivateTmp = true;
          NoNewPrivileges = true;
        };
      };
      nix.settings.builders = lib.concatStringsSep " ; " (
        [ "@${machinesFile}" ] ++ optional (config.nix.distributedBuilds or false) "@/etc/nix/machines"
      );
    })
  ];
}
