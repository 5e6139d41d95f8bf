# Evaluates nix/module.nix with nixpkgs' lib and stub declarations of the
# NixOS options it sets (typed as NixOS types them), with a small stub
# `pkgs`, for the example configurations in nix/tests/examples.nix.
#
#   nix-instantiate --eval --strict --json test/nix/evaluate.nix \
#     --arg lib 'import <nixpkgs-lib>/lib' [--arg extra '{ ... }']
#
# The result: `optionNames`, and per example (`examples.<name>`): `failures` (nix/tests/expectations.nix, the same
# checks `nix flake check` runs on real NixOS) and the facts the tests
# assert on: services, files in the system path, the rendered settings.
{
  lib,
  # More examples, name -> module, from the test.
  extra ? { },
}:
let
  inherit (lib) mkOption types;

  fakeStorePath = name: "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" name)}-${name}";
  derivation' =
    name: stub:
    {
      type = "derivation";
      inherit name stub;
      outPath = fakeStorePath name;
    };

  tomlValue =
    let
      valueType =
        types.nullOr (
          types.oneOf [
            types.bool
            types.int
            types.float
            types.str
            types.path
            (types.attrsOf valueType)
            (types.listOf valueType)
          ]
        )
        // {
          description = "TOML value";
        };
    in
    valueType;

  pkgs = {
    ogygia = derivation' "ogygia-0.1.0" { } // {
      meta.mainProgram = "ogygia";
    };
    nettools = derivation' "net-tools" { };
    nebula = derivation' "nebula" { };
    coreutils = derivation' "coreutils" { };
    formats.toml =
      { }:
      {
        type = types.attrsOf tomlValue;
        # A value TOML cannot hold (a function, a null) fails here, as it does in nixpkgs.
        generate = name: value: derivation' name { value = builtins.fromJSON (builtins.toJSON value); };
      };
    runCommand = name: env: script: derivation' name { inherit env script; };
    writeTextFile =
      {
        name,
        text,
        destination ? "",
        ...
      }:
      derivation' name { inherit text destination; };
  };

  # The NixOS options the module sets, declared as NixOS declares them.
  nixosStub = {
    options = {
      assertions = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      environment.systemPackages = mkOption {
        type = types.listOf types.package;
        default = [ ];
      };
      environment.variables = mkOption {
        type = types.attrsOf types.str;
        default = { };
      };
      environment.pathsToLink = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      system.configurationRevision = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      systemd.services = mkOption {
        default = { };
        type = types.attrsOf (
          types.submodule {
            options = {
              description = mkOption { type = types.str; default = ""; };
              wantedBy = mkOption { type = types.listOf types.str; default = [ ]; };
              wants = mkOption { type = types.listOf types.str; default = [ ]; };
              after = mkOption { type = types.listOf types.str; default = [ ]; };
              restartTriggers = mkOption { type = types.listOf types.unspecified; default = [ ]; };
              path = mkOption { type = types.listOf types.package; default = [ ]; };
              environment = mkOption { type = types.attrsOf types.str; default = { }; };
              serviceConfig = mkOption {
                type = types.attrsOf (
                  types.oneOf [
                    types.bool
                    types.int
                    types.str
                    (types.listOf types.str)
                  ]
                );
                default = { };
              };
            };
          }
        );
      };
      nix.settings = mkOption {
        default = { };
        type = types.submodule {
          freeformType = types.attrsOf types.unspecified;
          options.substituters = mkOption { type = types.listOf types.str; default = [ ]; };
          options.trusted-public-keys = mkOption { type = types.listOf types.str; default = [ ]; };
        };
      };
      # Set by nix/modules/builders.nix (ogygia.builder.enable).
      users.users = mkOption {
        type = types.attrsOf (types.submodule { freeformType = types.attrsOf types.unspecified; });
        default = { };
      };
      users.groups = mkOption {
        type = types.attrsOf (types.submodule { freeformType = types.attrsOf types.unspecified; });
        default = { };
      };
      services.openssh.enable = mkOption {
        type = types.bool;
        default = false;
      };
      networking.firewall.allowedTCPPorts = mkOption {
        type = types.listOf types.port;
        default = [ ];
      };
      # Set by nix/modules/nebula.nix (ogygia.nebula.enable).
      services.nebula.networks = mkOption {
        type = types.attrsOf (types.submodule { freeformType = types.attrsOf types.unspecified; });
        default = { };
      };
    };
  };

  evalSystem =
    modules:
    (lib.evalModules {
      modules = [
        nixosStub
        { _module.args.pkgs = pkgs; }
      ]
      ++ modules;
    }).config;

  module = import ../../nix/module.nix;
  baseline = evalSystem [ ];
  examples = import ../../nix/tests/examples.nix // extra;

  stubOf = drv: drv.stub or { };
  report =
    name: example:
    let
      config = evalSystem [
        module
        example
      ];
      packages = config.environment.systemPackages;
      byName = n: lib.findFirst (p: p.name == n) null packages;
      cliConfig = byName "ogygia-config.toml";
      revision = byName "ogygia-build-revision";
      checked = drv: {
        path = toString drv;
        script = (stubOf drv).script;
        settings = (stubOf (stubOf drv).env.rendered).value;
      };
    in
    {
      failures = import ../../nix/tests/expectations.nix {
        inherit lib name config baseline;
      };
      failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
      services = lib.mapAttrs (_: s: {
        inherit (s)
          description
          wantedBy
          wants
          after
          serviceConfig
          ;
        path = map (p: p.name) s.path;
        restartTriggers = map toString s.restartTriggers;
      }) config.systemd.services;
      systemPackages = map (p: p.name) packages;
      pathsToLink = config.environment.pathsToLink;
      variables = config.environment.variables;
      buildRevision = if revision == null then null else (stubOf revision);
      cliConfig = if cliConfig == null then null else checked cliConfig;
      irisdConfig = if config.ogygia.irisd.enable then checked config.ogygia.irisd.configFile else null;
      nixSettings = {
        inherit (config.nix.settings) substituters trusted-public-keys;
      };
      firewallTCPPorts = config.networking.firewall.allowedTCPPorts;
      nebulaNetworks = config.services.nebula.networks;
      # Every NixOS option (outside ogygia.*) whose value differs from a
      # system without the module, as "systemd.services": a disabled module
      # must leave this empty. (Assertions that hold change nothing; those
      # that fail are `failedAssertions`.)
      changedOutsideOgygia =
        changedPaths [ ]
          (removeAttrs config [
            "ogygia"
            "_module"
            "assertions"
          ])
          (
            removeAttrs baseline [
              "_module"
              "assertions"
            ]
          );
    };

  # The attribute paths (two levels deep) where `a` and `b` differ, compared as JSON.
  changedPaths =
    prefix: a: b:
    let
      names = lib.unique (builtins.attrNames a ++ builtins.attrNames b);
      differs = n: builtins.toJSON (a.${n} or null) != builtins.toJSON (b.${n} or null);
      deeper =
        n:
        if builtins.length prefix < 1 && builtins.isAttrs (a.${n} or null) && builtins.isAttrs (b.${n} or null)
        then changedPaths (prefix ++ [ n ]) a.${n} b.${n}
        else [ (lib.concatStringsSep "." (prefix ++ [ n ])) ];
    in
    lib.concatMap deeper (builtins.filter differs names);

  options =
    (lib.evalModules {
      modules = [
        nixosStub
        module
        { _module.args.pkgs = pkgs; }
      ];
    }).options;
in
{
  examples = lib.mapAttrs report examples;
  # Every option the module declares, as `ogygia.etcd.endpoints`.
  optionNames = map (o: o.name) (
    builtins.filter (o: lib.hasPrefix "ogygia." o.name && !lib.hasInfix "._module." o.name) (
      lib.optionAttrSetToDocList options
    )
  );
}
