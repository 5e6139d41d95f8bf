# ogygia-irisd with more than one process (docs/irisd.md, "Workers"):
# node:cluster workers share the listen addresses and serve the local
# store's narinfos and NARs; the main process runs the rest and is the
# one systemd signals (KillMode=mixed: it stops its workers gracefully,
# anything left after it exits is killed).
{ config, lib, ... }:

let
  inherit (lib) mkIf mkOption types;
  cfg = config.ogygia;
in
{
  options.ogygia.irisd.workers = mkOption {
    type = types.either (types.ints.between 1 64) (types.enum [ "auto" ]);
    default = 1;
    example = "auto";
    description = ''
      Processes serving irisd's listen addresses (`server.workers`): 1
      (one process), up to 64, or "auto" (one per CPU). More than one
      raises narinfo throughput under many connections; each worker
      keeps its own store caches (memory grows with them).
    '';
  };

  config = mkIf (cfg.irisd.enable && cfg.irisd.workers != 1) {
    ogygia.irisd.settings.server.workers = cfg.irisd.workers;
    systemd.services.ogygia-irisd.serviceConfig.KillMode = "mixed";
  };
}
