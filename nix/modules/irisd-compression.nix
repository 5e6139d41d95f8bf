# ogygia-irisd serving NARs compressed (docs/irisd.md, "Compression"): for
# hosts whose peers or clients reach them over slow links. Off by default:
# on a LAN, compressing costs more CPU than the bytes it saves. Compressed
# NARs are kept under the cache folder (`cache.dir`/zstd), within the
# cache's limits.
{ config, lib, ... }:

let
  inherit (lib) mkIf mkOption types;
  cfg = config.ogygia;
in
{
  options.ogygia.irisd.compression = mkOption {
    type = types.enum [
      "none"
      "zstd"
    ];
    default = "none";
    example = "zstd";
    description = ''
      How irisd serves NARs (`server.compression`): "none", or "zstd",
      whose narinfos name a zstd file compressed on their first request.
      Peers read both, whatever their own setting.
    '';
  };

  config = mkIf (cfg.irisd.enable && cfg.irisd.compression != "none") {
    ogygia.irisd.settings.server.compression = cfg.irisd.compression;
  };
}
