# Credentials of the fleet backend (issue 13): TLS files and a user with its
# password file, passed to every ogygia service that talks to the fleet
# backend with systemd's LoadCredential (never through the Nix store). The CLI configuration names them by their
# credential names, which ogygia resolves in $CREDENTIALS_DIRECTORY.
{ config, lib, ... }:
let
  inherit (lib) mkIf mkOption types;
  cfg = config.ogygia.fleetCredentials;

  # credential name -> file on the host, for what is set.
  files = lib.filterAttrs (_: file: file != null) {
    fleet-ca = cfg.caFile;
    fleet-cert = cfg.certFile;
    fleet-key = cfg.keyFile;
    fleet-password = cfg.passwordFile;
  };
  loadCredential = lib.mapAttrsToList (name: file: "${name}:${file}") files;
  has = name: builtins.hasAttr name files;
  notInStore =
    file:
    file == null || !lib.hasPrefix builtins.storeDir (toString file);

  # The services that read or write the fleet backend, when enabled: the
  # publisher, the dashboard, the update agent (its rollout keys and
  # update_* fields), the builders daemon (it watches the fleet), and irisd
  # when it finds its peers in the fleet registry.
  o = config.ogygia;
  fleetServices =
    lib.optional o.publish.enable "ogygia-publish"
    ++ lib.optional o.dashboard.enable "ogygia-dashboard"
    ++ lib.optional o.update.enable "ogygia-update"
    ++ lib.optional o.builders.enable "ogygia-builders"
    ++ lib.optional (o.irisd.enable && o.irisd.registry.enable) "ogygia-irisd";

  userKeys = lib.optionalAttrs (cfg.username != null) {
    inherit (cfg) username;
    password_file = "fleet-password";
  };
in
{
  options.ogygia.fleetCredentials = {
    username = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "web01";
      description = "The user (etcd) or digest identity (ZooKeeper) this host authenticates as; `ogygia fleet grant HOST` makes it.";
    };
    passwordFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/run/keys/ogygia-fleet-password";
      description = "File holding the user's password (outside the Nix store), passed with LoadCredential.";
    };
    caFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "PEM CA bundle that etcd's https endpoints must chain to.";
    };
    certFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "PEM client certificate for etcd's https endpoints.";
    };
    keyFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "PEM private key of certFile (outside the Nix store), passed with LoadCredential.";
    };
    settings = mkOption {
      type = types.attrsOf (types.attrsOf types.str);
      internal = true;
      readOnly = true;
      description = "The keys each backend section of config.toml gets, by backend.";
    };
  };

  config = {
    ogygia.fleetCredentials.settings = {
      etcd =
        userKeys
        // lib.optionalAttrs (has "fleet-ca") { ca_file = "fleet-ca"; }
        // lib.optionalAttrs (has "fleet-cert") { cert_file = "fleet-cert"; }
        // lib.optionalAttrs (has "fleet-key") { key_file = "fleet-key"; };
      zookeeper = userKeys;
    };

    assertions = [
      {
        assertion = (cfg.username == null) == (cfg.passwordFile == null);
        message = "ogygia.fleetCredentials: username and passwordFile go together.";
      }
      {
        assertion = (cfg.certFile == null) == (cfg.keyFile == null);
        message = "ogygia.fleetCredentials: certFile and keyFile go together.";
      }
      {
        assertion = notInStore cfg.passwordFile && notInStore cfg.keyFile;
        message = "ogygia.fleetCredentials: a secret in the Nix store is readable by every user; keep passwordFile and keyFile outside it.";
      }
    ];

    # Every service that talks to the fleet backend gets the files.
    systemd.services = mkIf (files != { }) (
      lib.genAttrs fleetServices (_: {
        serviceConfig.LoadCredential = loadCredential;
      })
    );
  };
}
