# ogygia-irisd finding its peers in the fleet registry (docs/irisd.md,
# "Peers from the fleet registry"): irisd watches the fleet backend this
# module configures for Ogygia, and the publisher publishes the URL irisd
# serves peers on (`iris_url`, from irisd's `server.advertise` or its first
# reachable listen address).
{ config, lib, ... }:

let
  inherit (lib) mkIf mkOption types;
  cfg = config.ogygia;
in
{
  options.ogygia.irisd.registry = {
    enable = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Take as irisd's peers every host of the fleet registry whose
        publisher is alive and publishes `iris_url` (this host excepted),
        besides `settings.peers.urls`. Needs `ogygia.publish.enable` on the
        hosts, and `server.advertise` or a listen address other hosts reach.
      '';
    };

    advertise = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "http://10.0.0.1:35742";
      description = "The URL other hosts reach this irisd on (`server.advertise`); null: the first reachable listen address.";
    };
  };

  config = lib.mkMerge [
    (mkIf (cfg.irisd.enable && cfg.irisd.registry.enable) {
      assertions = [
        {
          assertion = cfg.enable;
          message = "ogygia.irisd.registry.enable needs ogygia.enable (irisd reads the fleet backend from its configuration).";
        }
      ];
      ogygia.irisd.settings.peers = {
        registry = true;
        ogygia_config = "/run/current-system/sw/share/ogygia/config.toml";
      };
    })

    (mkIf (cfg.irisd.enable && cfg.irisd.registry.advertise != null) {
      ogygia.irisd.settings.server.advertise = cfg.irisd.registry.advertise;
    })

    # The publisher reads irisd's configuration for iris_url.
    (mkIf (cfg.irisd.enable && cfg.publish.enable) {
      systemd.services.ogygia-publish = {
        environment.OGYGIA_IRISD_CONFIG = "${cfg.irisd.configFile}";
        restartTriggers = [ cfg.irisd.configFile ];
      };
    })
  ];
}
