# NixOS VM test (`nix flake check` or `nix build .#checks.x86_64-linux.vm`;
# needs KVM): two machines, etcd on the first, `ogygia publish` and irisd on
# both. `ogygia status` on either shows both hosts, and a path built on one
# is substituted on the other through the irisd daemons.
{
  pkgs,
  module,
  overlay,
}:
let
  # A key made for this test alone; it signs nothing outside the VMs.
  testSecretKey = "ogygia-vm-test-1:Qtg4+yM99drBKWjZvNkV6uf866HDXjvJlVDha4k7kXLhYgcQWOZMKa56bXb47KPjrtiRBCzlcovSNAbAUSnyuA==";
  testPublicKey = "ogygia-vm-test-1:4WIHEFjmTCmuem12+Oyj467YkQQs5XKL0jQGwFEp8rg=";

  common =
    { config, ... }:
    {
      imports = [ module ];
      ogygia = {
        enable = true;
        package = (pkgs.extend overlay).ogygia;
        etcd.endpoints = [ "http://etcd:2379" ];
        publish.settings.lease_ttl_seconds = 5;
        irisd = {
          enable = true;
          settings = {
            server.listen = [ "0.0.0.0:35742" ];
            peers.urls = map (host: "http://${host}:35742") (
              builtins.filter (host: host != config.networking.hostName) [
                "etcd"
                "peer"
              ]
            );
            trust.trusted_keys = [ testPublicKey ];
            signing.secret_key_files = [ "/etc/ogygia-test/cache-key.secret" ];
          };
          configureNixDaemon = true;
          openFirewall = true;
        };
      };
      system.configurationRevision = "${config.networking.hostName}0123456789abcdef";
      environment.etc."ogygia-test/cache-key.secret" = {
        text = testSecretKey;
        mode = "0400";
      };
      # A failed lookup must not be remembered while the path spreads.
      nix.settings.narinfo-cache-negative-ttl = 0;
      environment.systemPackages = [ pkgs.jq ];
    };
in
pkgs.testers.runNixOSTest {
  name = "ogygia";
  nodes = {
    etcd = {
      imports = [ common ];
      services.etcd = {
        enable = true;
        listenClientUrls = [ "http://0.0.0.0:2379" ];
        advertiseClientUrls = [ "http://etcd:2379" ];
      };
      networking.firewall.allowedTCPPorts = [ 2379 ];
    };
    peer = {
      imports = [ common ];
    };
  };

  testScript = ''
    start_all()
    etcd.wait_for_unit("etcd.service")
    for machine in (etcd, peer):
        machine.wait_for_unit("ogygia-publish.service")
        machine.wait_for_unit("ogygia-irisd.service")
        machine.succeed("test -s /run/current-system/sw/share/ogygia/build-revision")
        machine.succeed("ogygia config check")

    # Both hosts published: either one sees the whole fleet.
    for machine in (etcd, peer):
        machine.wait_until_succeeds(
            "ogygia status --json | jq -e '(.mode == \"etcd\") and (.hosts | length == 2) "
            "and ([.hosts[] | select(.local | not) | .online] == [true])'"
        )
    print(peer.succeed("ogygia status"))

    # A path that exists only on etcd reaches peer through irisd.
    out = etcd.succeed(
        "nix-build --no-out-link -E 'derivation { name = \"ogygia-vm-test\"; system = builtins.currentSystem; "
        "builder = \"/bin/sh\"; args = [ \"-c\" \"echo shared by irisd > $out\" ]; }'"
    ).strip()
    peer.fail(f"test -e {out}")
    peer.wait_until_succeeds(f"nix-store --realise {out}", timeout=60)
    peer.succeed(f"grep -q 'shared by irisd' {out}")
    print(peer.succeed(f"ogygia iris providers {out}"))
  '';
}
