# ogygia-irisd listening on Unix sockets (`server.listen = [ "unix:/run/ogygia-irisd/irisd.sock" ]`):
# the socket's folder is made for the service. Under /run it is the
# service's RuntimeDirectory (created at start, owned by its dynamic user,
# removed at stop); elsewhere the folder must exist and is made writable
# through ReadWritePaths (ProtectSystem=strict makes the rest read-only).
# irisd itself makes the socket readable and writable by every user.
{ config, lib, ... }:

let
  cfg = config.ogygia;
  listen = cfg.irisd.settings.server.listen;
  socketDirs = lib.unique (
    map (address: builtins.dirOf (lib.removePrefix "unix:" address)) (
      builtins.filter (lib.hasPrefix "unix:") listen
    )
  );
  underRun = builtins.filter (dir: lib.hasPrefix "/run/" dir) socketDirs;
  elsewhere = builtins.filter (dir: !lib.hasPrefix "/run/" dir) socketDirs;
in
{
  config = lib.mkIf (cfg.irisd.enable && socketDirs != [ ]) {
    assertions = [
      {
        assertion = builtins.all (dir: lib.hasPrefix "/" dir && dir != "/" && dir != "/run") socketDirs;
        message = "ogygia.irisd.settings.server.listen: a Unix socket needs an absolute path in a folder of its own, like \"unix:/run/ogygia-irisd/irisd.sock\".";
      }
      {
        assertion = !cfg.irisd.configureNixDaemon || builtins.any (a: !lib.hasPrefix "unix:" a) listen;
        message = "ogygia.irisd.configureNixDaemon needs a TCP listen address: Nix's http:// substituters cannot reach a Unix socket.";
      }
    ];
    systemd.services.ogygia-irisd.serviceConfig = {
      RuntimeDirectory = map (lib.removePrefix "/run/") underRun;
      RuntimeDirectoryMode = "0755";
      ReadWritePaths = elsewhere;
    };
  };
}
