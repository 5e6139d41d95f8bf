# The README's example configurations of the module, each a NixOS module.
# Evaluated by nix/tests/eval.nix (`nix flake check`) and by the tests in
# test/nixos-module.test.ts (with nixpkgs' lib and stub NixOS options).
{
  # ogygia.enable alone: build revision and the CLI in local-only mode.
  minimal = {
    ogygia.enable = true;
    ogygia.domain = "island.example.com";
    system.configurationRevision = "0123456789abcdef0123456789abcdef01234567";
  };

  # A dirty flake: no revision.
  dirty = {
    ogygia.enable = true;
    system.configurationRevision = null;
  };

  etcd-fleet = {
    ogygia = {
      enable = true;
      domain = "example.com";
      etcd = {
        endpoints = [
          "http://etcd1.internal:2379"
          "http://etcd2.internal:2379"
          "http://etcd3.internal:2379"
        ];
        namespace = "/nixos/versions";
        timeoutSeconds = 10;
      };
      publish.settings = {
        lease_ttl_seconds = 10;
        resync_interval_seconds = 300;
      };
    };
    system.configurationRevision = "0123456789abcdef0123456789abcdef01234567";
  };

  zookeeper-fleet = {
    ogygia = {
      enable = true;
      domain = "example.com";
      zookeeper = {
        enable = true;
        endpoints = [
          "zk1.internal:2181"
          "zk2.internal:2181"
          "zk3.internal:2181"
        ];
        namespace = "/nixos/versions";
        timeoutSeconds = 10;
      };
    };
  };

  irisd-peers = {
    ogygia.irisd = {
      enable = true;
      settings = {
        server.listen = [ "10.0.0.1:35742" ];
        peers.urls = [
          "http://10.0.0.2:35742"
          "http://10.0.0.3:35742"
        ];
        trust.trusted_keys = [ "cache.example.com-1:HQsjYdrcs3ilS/ngtlbTQXU4Xfsm+va5NN7yoK0wKMg=" ];
        signing.secret_key_files = [ "/var/lib/ogygia/cache-key.secret" ];
        cache.max_size_bytes = 1073741824;
      };
      configureNixDaemon = true;
      openFirewall = true;
    };
  };

  nebula = {
    ogygia = {
      enable = true;
      nebula.ipv4 = "10.42.0.7";
      irisd = {
        enable = true;
        settings.server.listen = [ "127.0.0.1:35742" ];
        configureNixDaemon = true;
      };
    };
  };

  # The module imported, nothing enabled: must change nothing.
  disabled = { };
}
