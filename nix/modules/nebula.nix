# The host's place in the Nebula mesh Ogygia manages (README "ogygia nebula").
#
# `ogygia.nebula.enable` configures nixpkgs' `services.nebula.networks.<network>`
# with the CA and this host's certificate (signed on the operator's machine
# with `ogygia nebula sign`, committed, named here), and a key that never
# leaves the host: `ogygia-nebula-keygen` makes it at first boot with
# `ogygia nebula keygen` (an existing key is kept) and hands it to Nebula's
# user. irisd listens on the Nebula address (`ogygia.nebula.ipv4`, declared in
# module.nix) and, with registry peers, advertises it; `ogygia publish`
# publishes the certificate's facts (`[ogygia.nebula] cert_file`) for
# `ogygia nebula status`.
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
    types
    ;

  cfg = config.ogygia;
  neb = cfg.nebula;
  nebulaUser = "nebula-${neb.network}";
  keyFile = "${neb.keyDir}/host.key";

  # irisd's first listen port: the one module.nix adds the Nebula address with.
  irisdPort = lib.toInt (lib.last (lib.splitString ":" (builtins.head cfg.irisd.settings.server.listen)));

  # ipv4/prefixLength -> the network, "10.42.0.0/16", for `[ogygia.nebula] subnet`.
  subnetOf =
    address: bits:
    let
      octets = map lib.toInt (lib.splitString "." address);
      value = builtins.foldl' (acc: octet: acc * 256 + octet) 0 octets;
      block = lib.foldl' (acc: _: acc * 2) 1 (lib.range 1 (32 - bits));
      network = value - lib.mod value block;
      octet = shift: lib.mod (network / shift) 256;
    in
    "${toString (octet 16777216)}.${toString (octet 65536)}.${toString (octet 256)}.${toString (octet 1)}/${toString bits}";

  # As src/iris/advertise.ts decides which listen address peers can reach.
  reachable =
    address:
    let
      host = lib.removeSuffix ":${lib.last (lib.splitString ":" address)}" address;
    in
    !(
      lib.hasPrefix "unix:" address
      || lib.hasPrefix "127." host
      || builtins.elem host [
        "localhost"
        "0.0.0.0"
        "[::]"
        "[::1]"
        ""
      ]
    );

  anyHost = port: proto: { inherit port proto; host = "any"; };
in
{
  options.ogygia.nebula = {
    enable = mkEnableOption "this host in the Nebula mesh Ogygia manages (nixpkgs' services.nebula)";

    network = mkOption {
      type = types.strMatching "[A-Za-z0-9_-]{1,64}";
      default = "ogygia";
      description = "The network's name: `services.nebula.networks.<network>`, and the registry's key for its addresses.";
    };

    prefixLength = mkOption {
      type = types.ints.between 8 30;
      default = 16;
      description = "The mesh's prefix length: with `ipv4`, the subnet `ogygia nebula sign --ip auto` hands addresses out of.";
    };

    lighthouses = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "10.42.0.1" ];
      description = "The lighthouses' Nebula addresses (empty on a lighthouse).";
    };

    staticHostMap = mkOption {
      type = types.attrsOf (types.listOf types.str);
      default = { };
      example = {
        "10.42.0.1" = [ "203.0.113.10:4242" ];
      };
      description = "Nebula address -> underlay `host:port`s, at least for the lighthouses.";
    };

    isLighthouse = mkOption {
      type = types.bool;
      default = false;
      description = "This host is a lighthouse (listens on UDP 4242).";
    };

    caFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = literalExpression "./nebula-ca/ca.crt";
      description = "The mesh's CA certificate (`ogygia nebula ca init`'s ca.crt; never its key).";
    };

    certFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = literalExpression "./nebula/web01-3c9f0a2b7d1e4f60.crt";
      description = "This host's certificate, from `ogygia nebula sign` (the committed folder).";
    };

    keyDir = mkOption {
      type = types.str;
      default = "/var/lib/ogygia/nebula";
      description = "Where `ogygia nebula keygen` keeps this host's key pair (host.key, 0600, owned by Nebula's user).";
    };

    firewall = {
      inbound = mkOption {
        type = types.listOf (types.attrsOf types.anything);
        default = [ (anyHost "any" "icmp") ] ++ optional cfg.irisd.enable (anyHost irisdPort "tcp");
        defaultText = literalExpression ''[ { port = "any"; proto = "icmp"; host = "any"; } ] ++ irisd's port, tcp, from any mesh host, when irisd is enabled'';
        description = "Nebula's own firewall, inbound rules (`services.nebula.networks.<network>.firewall.inbound`).";
      };
      outbound = mkOption {
        type = types.listOf (types.attrsOf types.anything);
        default = [ (anyHost "any" "any") ];
        description = "Nebula's own firewall, outbound rules.";
      };
    };
  };

  config = mkIf neb.enable (mkMerge [
    {
      assertions = [
        {
          assertion = neb.ipv4 != null;
          message = "ogygia.nebula.enable needs ogygia.nebula.ipv4, this host's address in its certificate.";
        }
        {
          assertion = neb.caFile != null && neb.certFile != null;
          message = "ogygia.nebula.enable needs ogygia.nebula.caFile and ogygia.nebula.certFile (from `ogygia nebula ca init` and `ogygia nebula sign`).";
        }
        {
          assertion = neb.isLighthouse || neb.lighthouses != [ ];
          message = "ogygia.nebula.lighthouses is empty: a host that is not a lighthouse needs at least one.";
        }
        {
          assertion = builtins.all (address: neb.staticHostMap ? ${address}) neb.lighthouses;
          message = "ogygia.nebula.staticHostMap must give each lighthouse's underlay address.";
        }
      ];

      services.nebula.networks.${neb.network} = {
        enable = true;
        ca = neb.caFile;
        cert = neb.certFile;
        key = keyFile;
        inherit (neb) isLighthouse staticHostMap;
        lighthouses = if neb.isLighthouse then [ ] else neb.lighthouses;
        firewall = { inherit (neb.firewall) inbound outbound; };
      };

      # The key, made on this host at first boot and kept; only host.pub leaves it.
      systemd.services.ogygia-nebula-keygen = {
        description = "Ogygia: this host's Nebula key pair (made once, kept)";
        path = [ pkgs.nebula ];
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          UMask = "0022";
          ExecStartPre = "${pkgs.coreutils}/bin/mkdir -p ${dirOf neb.keyDir}";
          ExecStart = "${lib.getExe' cfg.package "ogygia"} nebula keygen --dir ${neb.keyDir}";
          ExecStartPost = "${pkgs.coreutils}/bin/chown -R ${nebulaUser}:${nebulaUser} ${neb.keyDir}";
        };
      };
      systemd.services."nebula@${neb.network}" = {
        wants = [ "ogygia-nebula-keygen.service" ];
        after = [ "ogygia-nebula-keygen.service" ];
      };

      # The CLI: the subnet for `sign --ip auto`, the CA for `status`, the
      # certificate whose facts `ogygia publish` publishes.
      ogygia.cliSections.nebula =
        { inherit (neb) network; }
        // lib.optionalAttrs (neb.certFile != null) { cert_file = "${neb.certFile}"; }
        // lib.optionalAttrs (neb.caFile != null) { ca_files = [ "${neb.caFile}" ]; }
        // lib.optionalAttrs (neb.ipv4 != null) { subnet = subnetOf neb.ipv4 neb.prefixLength; };
    }

    # The publisher reads the certificate with nebula-cert.
    (mkIf cfg.publish.enable {
      systemd.services.ogygia-publish.path = [ pkgs.nebula ];
    })

    # irisd's peers reach it over the mesh. The publisher advertises irisd's
    # first listen address other hosts can reach (src/iris/advertise.ts), and
    # module.nix adds the Nebula address after the configured ones: those
    # must all be loopback (or wildcard) for the Nebula one to be advertised,
    # unless an advertise URL is set. (Setting advertise here would read
    # irisd's settings while they are being defined.)
    (mkIf (cfg.irisd.enable && cfg.irisd.registry.enable) {
      assertions = [
        {
          assertion =
            cfg.irisd.registry.advertise != null
            || (cfg.irisd.settings.server.advertise or "") != ""
            || builtins.all (address: !(reachable address)) cfg.irisd.settings.server.listen;
          message = "ogygia.nebula with ogygia.irisd.registry: irisd would advertise ${
            lib.findFirst reachable "?" cfg.irisd.settings.server.listen
          } to its peers, not its Nebula address; listen on loopback only, or set ogygia.irisd.registry.advertise.";
        }
      ];
    })
  ]);
}
