# The Ogygia NixOS module: build-revision tracking, the CLI configuration,
# the `ogygia publish` service and the `ogygia-irisd` binary cache.
#
# A plain module function, importable without the flake:
#   imports = [ ./path/to/ogygia/nix/module.nix ];
# `ogygia.package` defaults to `pkgs.ogygia` (the flake's overlay adds it).
#
# Every rendered configuration file is checked at build time by the program
# that reads it (`ogygia config check`, `ogygia-irisd --check-config`), so a
# mistake in the settings fails the system build, not the service at boot.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    literalExpression
    mkEnableOption
    mkIf
    mkMerge
    mkOption
    optional
    optionalAttrs
    types
    ;

  cfg = config.ogygia;
  toml = pkgs.formats.toml { };

  # The CLI reads its configuration from here when neither --config nor
  # $OGYGIA_CONFIG names one (src/config: the default path). The file lands
  # there because the module links share/ogygia into the system path.
  cliConfigPath = "/run/current-system/sw/share/ogygia/config.toml";

  irisdDefaultPort = 35742;
  irisdCacheDir = "/var/cache/ogygia-irisd";
  irisdCredentialsDir = "/run/credentials/ogygia-irisd.service";

  backendOptions = name: example: {
    endpoints = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = example;
      description = "${name} endpoints.";
    };
    namespace = mkOption {
      type = types.str;
      default = "/nixos/versions";
      description = "Key prefix under which each host publishes `<host>/{current,booted,nextboot}`.";
    };
    timeoutSeconds = mkOption {
      type = types.ints.between 1 3600;
      default = 10;
      description = "Seconds to wait for ${name} before `ogygia status` falls back to local data.";
    };
  };

  etcdEnabled = cfg.etcd.endpoints != [ ];
  zookeeperEnabled = cfg.zookeeper.enable;
  backendEnabled = etcdEnabled || zookeeperEnabled;

  backendSettings = backend: {
    inherit (backend) endpoints namespace;
    timeout_seconds = backend.timeoutSeconds;
  };

  # The CLI's config.toml, keys as in the README's "Configuration" section.
  cliSettings = {
    ogygia =
      optionalAttrs (cfg.domain != null) { inherit (cfg) domain; }
      // optionalAttrs etcdEnabled { etcd = backendSettings cfg.etcd // cfg.fleetCredentials.settings.etcd; }
      // optionalAttrs zookeeperEnabled {
        zookeeper = backendSettings cfg.zookeeper // cfg.fleetCredentials.settings.zookeeper;
      }
      // optionalAttrs (cfg.publish.settings != { }) { publish = cfg.publish.settings; }
      // cfg.cliSections;
  };

  # Checked by the CLI's own strict parser: unknown keys, wrong types and bad
  # endpoints fail the build with the key's name and line.
  cliConfigFile =
    pkgs.runCommand "ogygia-config.toml"
      {
        nativeBuildInputs = [ cfg.package ];
        rendered = toml.generate "ogygia-config-unchecked.toml" cliSettings;
      }
      ''
        ogygia config check "$rendered"
        install -Dm444 "$rendered" "$out/share/ogygia/config.toml"
      '';

  revisionText =
    if config.system.configurationRevision == null then
      "unknown"
    else
      config.system.configurationRevision;

  buildRevisionFile = pkgs.writeTextFile {
    name = "ogygia-build-revision";
    text = revisionText;
    destination = "/share/ogygia/build-revision";
  };

  # "host:port" or "[v6]:port".
  splitAddress =
    address:
    let
      v6 = builtins.match "\\[(.*)]:([0-9]+)" address;
      v4 = builtins.match "(.*):([0-9]+)" address;
      parts = if v6 != null then v6 else v4;
    in
    if parts == null then
      throw "ogygia.irisd.settings.server.listen: \"${address}\" is not \"host:port\" or \"[v6]:port\""
    else
      {
        host = builtins.elemAt parts 0;
        port = lib.toInt (builtins.elemAt parts 1);
        bracketed = v6 != null;
      };

  configuredListen = cfg.irisd.settings.server.listen;
  # `unix:/path` addresses are Unix sockets (nix/modules/irisd-unix.nix); the rest is TCP.
  isUnixAddress = lib.hasPrefix "unix:";
  tcpListen = builtins.filter (address: !isUnixAddress address);
  nebulaListen = optional (cfg.nebula.ipv4 != null) (
    if tcpListen configuredListen == [ ] then
      throw "ogygia.nebula.ipv4: irisd listens on no TCP address whose port the Nebula address could take"
    else
      "${cfg.nebula.ipv4}:${toString (splitAddress (builtins.head (tcpListen configuredListen))).port}"
  );
  irisdListen = lib.unique (configuredListen ++ nebulaListen);
  irisdPorts = lib.unique (map (address: (splitAddress address).port) (tcpListen irisdListen));

  isLoopback =
    address:
    let
      host = (splitAddress address).host;
    in
    lib.hasPrefix "127." host || host == "::1" || host == "localhost";

  # The URL the local nix-daemon uses: a loopback listen address if there is
  # one, else the first; a wildcard address is reached through loopback.
  substituterUrl =
    let
      loopback = builtins.filter isLoopback (tcpListen irisdListen);
      chosen = splitAddress (
        if loopback != [ ] then builtins.head loopback else builtins.head (tcpListen irisdListen)
      );
      host =
        if chosen.host == "0.0.0.0" then
          "127.0.0.1"
        else if chosen.host == "::" then
          "[::1]"
        else if chosen.bracketed then
          "[${chosen.host}]"
        else
          chosen.host;
    in
    "http://${host}:${toString chosen.port}";

  signingKeyFiles = cfg.irisd.settings.signing.secret_key_files;
  credentialName = index: "signing-key-${toString index}";

  # What irisd reads: the user's settings, with the Nebula address added to
  # the listen list and the key files replaced by their systemd credentials.
  irisdSettings = lib.recursiveUpdate cfg.irisd.settings {
    server.listen = irisdListen;
    signing.secret_key_files = lib.imap0 (
      index: _: "${irisdCredentialsDir}/${credentialName index}"
    ) signingKeyFiles;
  };

  # Checked by irisd's own parser; the key files are credentials that exist
  # only while the service runs, so they are not opened here.
  irisdConfigFile =
    pkgs.runCommand "ogygia-irisd.toml"
      {
        nativeBuildInputs = [ cfg.package ];
        rendered = toml.generate "ogygia-irisd-unchecked.toml" irisdSettings;
      }
      ''
        ogygia-irisd --check-config --no-key-files --config "$rendered"
        install -Dm444 "$rendered" "$out"
      '';

  # The hardening of nixpkgs' harmonia module, without MemoryDenyWriteExecute
  # (it breaks Node's JIT). Denied system calls fail with EPERM instead of
  # killing the process, so a libuv fallback (io_uring) keeps working.
  hardening = {
    DynamicUser = true;
    CapabilityBoundingSet = "";
    DeviceAllow = "";
    LockPersonality = true;
    NoNewPrivileges = true;
    PrivateDevices = true;
    PrivateMounts = true;
    PrivateTmp = true;
    PrivateUsers = true;
    ProcSubset = "pid";
    ProtectClock = true;
    ProtectControlGroups = true;
    ProtectHome = true;
    ProtectHostname = true;
    ProtectKernelLogs = true;
    ProtectKernelModules = true;
    ProtectKernelTunables = true;
    ProtectProc = "invisible";
    ProtectSystem = "strict";
    RestrictAddressFamilies = [
      "AF_UNIX"
      "AF_INET"
      "AF_INET6"
    ];
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    SystemCallArchitectures = "native";
    SystemCallErrorNumber = "EPERM";
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
      "~@resources"
    ];
    UMask = "0077";
  };
in
{
  imports = [
    ./modules/builders.nix
    ./modules/fleet-credentials.nix
    ./modules/irisd-registry.nix
    ./modules/nebula.nix
    ./modules/irisd-unix.nix
    ./modules/irisd-compression.nix
    ./modules/irisd-workers.nix
    ./modules/updates.nix
  ];

  options.ogygia = {
    enable = mkEnableOption "Ogygia: build-revision tracking, the ogygia CLI and its configuration";

    package = mkOption {
      type = types.package;
      default = pkgs.ogygia;
      defaultText = literalExpression "pkgs.ogygia";
      description = "The Ogygia package (the flake's `overlays.default` adds `pkgs.ogygia`).";
    };

    domain = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "island.example.com";
      description = "Base domain trimmed from host names when `ogygia status` displays them.";
    };

    etcd = backendOptions "etcd client URL" [ "http://etcd1.internal:2379" ];

    zookeeper = {
      enable = mkEnableOption "fleet state in ZooKeeper (etcd is preferred when both are configured)";
    }
    // backendOptions "ZooKeeper server (host:port)" [ "zk1.internal:2181" ];

    configFile = mkOption {
      type = types.package;
      readOnly = true;
      default = cliConfigFile;
      defaultText = literalExpression "<checked config.toml, in share/ogygia>";
      description = "The rendered, checked CLI configuration (installed at ${cliConfigPath}).";
    };

    versions.build_revision.enable = mkOption {
      type = types.bool;
      default = cfg.enable;
      defaultText = literalExpression "config.ogygia.enable";
      description = ''
        Write `system.configurationRevision` (or `unknown` when it is null, as
        for a dirty flake) to `/run/current-system/sw/share/ogygia/build-revision`.
      '';
    };

    publish = {
      enable = mkOption {
        type = types.bool;
        default = cfg.enable && backendEnabled;
        defaultText = literalExpression "config.ogygia.enable && (etcd endpoints set || zookeeper.enable)";
        description = "Run `ogygia publish`, which keeps this host's states in etcd or ZooKeeper.";
      };
      settings = mkOption {
        type = types.submodule { freeformType = toml.type; };
        default = { };
        example = {
          lease_ttl_seconds = 10;
          resync_interval_seconds = 300;
        };
        description = "The `[ogygia.publish]` keys of the CLI configuration (see the README).";
      };
    };

    dashboard = {
      enable = mkEnableOption "`ogygia dashboard`, a live web view of the fleet";
      listen = mkOption {
        type = types.str;
        default = "127.0.0.1:35743";
        example = "0.0.0.0:35743";
        description = "Where the dashboard listens (`ADDR:PORT`, `[v6]:PORT`). Other than loopback needs `tokenFile`.";
      };
      tokenFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/run/keys/ogygia-dashboard-token";
        description = "A file holding the bearer token the dashboard requires (passed as a systemd credential; keep it out of the Nix store).";
      };
      openFirewall = mkOption {
        type = types.bool;
        default = false;
        description = "Open the dashboard's port in the firewall.";
      };
      historyDays = mkOption {
        type = types.ints.unsigned;
        default = 90;
        description = "Days of state changes the dashboard keeps (each host keeps its newest; 0 keeps all).";
      };
    };

    irisd = {
      enable = mkEnableOption "ogygia-irisd, the peer-to-peer Nix binary cache";

      settings = mkOption {
        description = ''
          ogygia-irisd's configuration (docs/irisd.md), rendered to TOML and
          checked at build time. Signing key files are passed to the service
          as systemd credentials and never copied into the Nix store.
        '';
        default = { };
        example = literalExpression ''
          {
            server.listen = [ "10.0.0.1:35742" ];
            peers.urls = [ "http://10.0.0.2:35742" ];
            trust.trusted_keys = [ "cache.example.com-1:abc123..." ];
          }
        '';
        type = types.submodule {
          freeformType = toml.type;
          options = {
            server = mkOption {
              default = { };
              type = types.submodule {
                freeformType = toml.type;
                options.listen = mkOption {
                  type = types.nonEmptyListOf types.str;
                  default = [ "127.0.0.1:${toString irisdDefaultPort}" ];
                  description = "Addresses irisd listens on, `host:port`, `[v6]:port` or `unix:/path` (a Unix socket; under /run, its folder is the service's RuntimeDirectory).";
                };
              };
            };
            signing = mkOption {
              default = { };
              type = types.submodule {
                freeformType = toml.type;
                options.secret_key_files = mkOption {
                  # Strings, not paths: a path would be copied into the store.
                  type = types.listOf (types.strMatching "/.*");
                  default = [ ];
                  example = [ "/var/lib/ogygia/cache-key.secret" ];
                  description = "Nix secret key files irisd signs with, read through systemd's LoadCredential.";
                };
              };
            };
            trust = mkOption {
              default = { };
              type = types.submodule {
                freeformType = toml.type;
                options.trusted_keys = mkOption {
                  type = types.listOf types.str;
                  default = [ ];
                  description = "Public keys whose signatures make a peer's path trusted.";
                };
              };
            };
          };
        };
      };

      configFile = mkOption {
        type = types.package;
        readOnly = true;
        default = irisdConfigFile;
        defaultText = literalExpression "<checked ogygia-irisd.toml>";
        description = "The rendered, checked irisd configuration its service runs with.";
      };

      configureNixDaemon = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Add irisd to `nix.settings.substituters` (through a loopback listen
          address when there is one) and its `trust.trusted_keys` to
          `nix.settings.trusted-public-keys`.
        '';
      };

      openFirewall = mkOption {
        type = types.bool;
        default = false;
        description = "Open irisd's listen ports (and only those) in the firewall.";
      };
    };

    nebula.ipv4 = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "10.0.0.1";
      description = "This host's Nebula address: irisd also listens on it, on its first listen port.";
    };
  };


  config = mkMerge [
    (mkIf cfg.enable {
      environment.systemPackages = [
        cfg.package
        cliConfigFile
      ];
    })

    (mkIf cfg.versions.build_revision.enable {
      environment.systemPackages = [ buildRevisionFile ];
    })

    # NixOS links only some of share/ into the system path.
    (mkIf (cfg.enable || cfg.versions.build_revision.enable) {
      environment.pathsToLink = [ "/share/ogygia" ];
    })

    (mkIf cfg.publish.enable {
      assertions = [
        {
          assertion = backendEnabled;
          message = "ogygia.publish.enable needs a backend: set ogygia.etcd.endpoints or ogygia.zookeeper.enable.";
        }
        {
          assertion = cfg.enable;
          message = "ogygia.publish.enable needs ogygia.enable (it reads the configuration that installs).";
        }
      ];
      systemd.services.ogygia-publish = {
        description = "Ogygia publisher: this host's system revisions in the fleet registry";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        restartTriggers = [ cliConfigFile ];
        # `hostname -f`, as the CLI detects this host's name.
        path = [ pkgs.nettools ];
        serviceConfig = hardening // {
          ExecStart = "${lib.getExe' cfg.package "ogygia"} publish --config ${cliConfigPath}";
          Restart = "on-failure";
          RestartSec = 5;
        };
      };
    })

    (mkIf cfg.dashboard.enable {
      assertions = [
        {
          assertion = cfg.enable && backendEnabled;
          message = "ogygia.dashboard.enable needs ogygia.enable and a backend: set ogygia.etcd.endpoints or ogygia.zookeeper.enable.";
        }
        {
          assertion =
            cfg.dashboard.tokenFile != null
            || builtins.match "(127\\.[0-9.]+|\\[::1]|localhost):[0-9]+" cfg.dashboard.listen != null;
          message = "ogygia.dashboard.listen = \"${cfg.dashboard.listen}\" is not a loopback address: set ogygia.dashboard.tokenFile.";
        }
        {
          assertion = cfg.dashboard.tokenFile == null || !lib.hasPrefix builtins.storeDir cfg.dashboard.tokenFile;
          message = "ogygia.dashboard.tokenFile: a token in the Nix store is readable by every user; keep it outside the store.";
        }
      ];
      systemd.services.ogygia-dashboard = {
        description = "Ogygia dashboard: a live web view of the fleet";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        restartTriggers = [ cliConfigFile ];
        path = [ pkgs.nettools ];
        serviceConfig = hardening // {
          ExecStart = lib.concatStringsSep " " (
            [
              "${lib.getExe' cfg.package "ogygia"} dashboard --config ${cliConfigPath}"
              "--listen ${cfg.dashboard.listen} --state-dir /var/lib/ogygia-dashboard"
              "--history-days ${toString cfg.dashboard.historyDays}"
            ]
            ++ optional (cfg.dashboard.tokenFile != null) "--token-file %d/token"
          );
          Restart = "on-failure";
          RestartSec = 5;
          StateDirectory = "ogygia-dashboard";
          LoadCredential = optional (cfg.dashboard.tokenFile != null) "token:${cfg.dashboard.tokenFile}";
        };
      };
      networking.firewall.allowedTCPPorts = mkIf cfg.dashboard.openFirewall [
        (lib.toInt (lib.last (lib.splitString ":" cfg.dashboard.listen)))
      ];
    })

    (mkIf cfg.irisd.enable {
      assertions = [
        {
          assertion = builtins.all (file: !lib.hasPrefix builtins.storeDir file) signingKeyFiles;
          message = "ogygia.irisd.settings.signing.secret_key_files: a key in the Nix store is readable by every user; keep it outside the store.";
        }
      ];
      systemd.services.ogygia-irisd = {
        description = "Ogygia irisd: peer-to-peer Nix binary cache";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        # glibc's malloc asks for transparent huge pages (madvise) for the memory
        # it maps: small NARs are assembled into fresh memory the NAR cache keeps,
        # a page fault per 4 KiB otherwise (docs/irisd.md, "Performance"). Changes
        # nothing where THP is off or already "always".
        environment.GLIBC_TUNABLES = lib.mkDefault "glibc.malloc.hugetlb=1";
        serviceConfig = hardening // {
          Type = "notify";
          NotifyAccess = "all";
          ExecStart = "${lib.getExe' cfg.package "ogygia-irisd"} --config ${irisdConfigFile}";
          Restart = "on-failure";
          RestartSec = 5;
          StateDirectory = "ogygia-irisd";
          CacheDirectory = "ogygia-irisd";
          ReadWritePaths =
            let
              dir = (cfg.irisd.settings.cache or { }).dir or irisdCacheDir;
            in
            optional (dir != irisdCacheDir) dir;
          # The store and its database are world-readable; ProtectSystem keeps them read-only.
          ReadOnlyPaths = [
            "/nix/store"
            "/nix/var/nix/db"
          ];
          LoadCredential = lib.imap0 (index: file: "${credentialName index}:${file}") signingKeyFiles;
          LimitNOFILE = 65536;
          # irisd lowers its helper threads' priority (setpriority) once it listens.
          SystemCallFilter = hardening.SystemCallFilter ++ [ "setpriority" ];
        };
      };

      # `ogygia iris push` and `providers` reach the local daemon wherever it listens.
      environment.variables.OGYGIA_IRISD_URL = mkIf (tcpListen irisdListen != [ ]) substituterUrl;

      # Without a TCP address, an assertion of nix/modules/irisd-unix.nix says why.
      nix.settings = mkIf (cfg.irisd.configureNixDaemon && tcpListen irisdListen != [ ]) {
        substituters = [ substituterUrl ];
        trusted-public-keys = cfg.irisd.settings.trust.trusted_keys;
      };

      networking.firewall.allowedTCPPorts = mkIf cfg.irisd.openFirewall irisdPorts;
    })
  ];
}
