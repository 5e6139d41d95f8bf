# What each example configuration (examples.nix) must produce. A function of
# the evaluated NixOS `config` of an example and of a `baseline` config (the
# same system without the module); returns the failed expectations as
# strings, so an empty list means every expectation holds. Shared by
# `nix flake check` (real NixOS) and `npm test` (stub NixOS options).
{
  lib,
  name,
  config,
  baseline,
}:
let
  services = config.systemd.services;
  packageNames = map (p: p.name or "") config.environment.systemPackages;
  hasPackage = n: builtins.elem n packageNames;
  expect = what: ok: lib.optional (!ok) "${name}: ${what}";
  service = n: services.${n} or null;
  serviceConfig = n: (service n).serviceConfig or { };
  hardened =
    n:
    let
      sc = serviceConfig n;
    in
    expect "${n} runs as a DynamicUser" (sc.DynamicUser or false)
    ++ expect "${n} has ProtectSystem=strict" ((sc.ProtectSystem or null) == "strict")
    ++ expect "${n} has NoNewPrivileges" (sc.NoNewPrivileges or false)
    ++ expect "${n} has no capabilities" ((sc.CapabilityBoundingSet or null) == "")
    ++ expect "${n} has a system call filter" (builtins.elem "@system-service" (sc.SystemCallFilter or [ ]))
    ++ expect "${n} keeps Node's JIT (no MemoryDenyWriteExecute)" (!(sc.MemoryDenyWriteExecute or false))
    ++ expect "${n} restarts on failure" ((sc.Restart or null) == "on-failure")
    ++ expect "${n} starts after the network is online" (
      builtins.elem "network-online.target" ((service n).after or [ ])
    );
  ogygiaServices = builtins.filter (lib.hasPrefix "ogygia") (builtins.attrNames services);
  enabled = config.ogygia.enable;
  publishing = config.ogygia.publish.enable;
  irisd = config.ogygia.irisd.enable;
  execStart = n: (serviceConfig n).ExecStart or "";
in
if name == "disabled" then
  expect "no ogygia service" (ogygiaServices == [ ])
  ++ expect "system packages unchanged" (
    packageNames == map (p: p.name or "") baseline.environment.systemPackages
  )
  ++ expect "pathsToLink unchanged" (config.environment.pathsToLink == baseline.environment.pathsToLink)
  ++ expect "environment variables unchanged" (
    config.environment.variables == baseline.environment.variables
  )
  ++ expect "nix.settings.substituters unchanged" (
    (config.nix.settings.substituters or [ ]) == (baseline.nix.settings.substituters or [ ])
  )
  ++ expect "firewall unchanged" (
    config.networking.firewall.allowedTCPPorts == baseline.networking.firewall.allowedTCPPorts
  )
else
  expect "share/ogygia is linked into the system path" (
    !(enabled || config.ogygia.versions.build_revision.enable)
    || builtins.elem "/share/ogygia" config.environment.pathsToLink
  )
  ++ expect "the build-revision file is in the system path" (
    config.ogygia.versions.build_revision.enable == hasPackage "ogygia-build-revision"
  )
  ++ expect "the checked CLI configuration is in the system path" (
    enabled == hasPackage "ogygia-config.toml"
  )
  ++ expect "ogygia-publish runs exactly when a backend is configured" (
    publishing == (service "ogygia-publish" != null)
  )
  ++ lib.optionals publishing (
    hardened "ogygia-publish"
    ++ expect "ogygia-publish runs `ogygia publish` with the CLI's default configuration path" (
      lib.hasSuffix "/bin/ogygia publish --config /run/current-system/sw/share/ogygia/config.toml" (
        execStart "ogygia-publish"
      )
    )
  )
  ++ expect "ogygia-irisd runs exactly when enabled" (irisd == (service "ogygia-irisd" != null))
  ++ lib.optionals irisd (
    hardened "ogygia-irisd"
    ++ expect "ogygia-irisd is Type=notify" ((serviceConfig "ogygia-irisd").Type or null == "notify")
    ++ expect "ogygia-irisd's malloc asks for transparent huge pages" (
      ((service "ogygia-irisd").environment or { }).GLIBC_TUNABLES or null == "glibc.malloc.hugetlb=1"
    )
    ++ expect "ogygia-irisd runs with a checked --config in the store" (
      builtins.match ".*/bin/ogygia-irisd --config /nix/store/[^ ]*-ogygia-irisd.toml" (execStart "ogygia-irisd")
      != null
    )
    ++ expect "ogygia-irisd has its cache directory" (
      (serviceConfig "ogygia-irisd").CacheDirectory or null == "ogygia-irisd"
    )
    ++ expect "ogygia-irisd reads signing keys as credentials" (
      map (lib.removeSuffix ":/var/lib/ogygia/cache-key.secret") (
        (serviceConfig "ogygia-irisd").LoadCredential or [ ]
      ) == map (_: "signing-key-0") config.ogygia.irisd.settings.signing.secret_key_files
    )
  )
  ++ lib.optionals (name == "irisd-peers") (
    expect "irisd is a substituter of the local nix-daemon" (
      builtins.elem "http://10.0.0.1:35742" config.nix.settings.substituters
    )
    ++ expect "irisd's trusted keys are trusted by Nix" (
      builtins.elem "cache.example.com-1:HQsjYdrcs3ilS/ngtlbTQXU4Xfsm+va5NN7yoK0wKMg=" config.nix.settings.trusted-public-keys
    )
    ++ expect "the CLI's iris commands reach the local irisd" (
      config.environment.variables.OGYGIA_IRISD_URL or null == "http://10.0.0.1:35742"
    )
    ++ expect "the firewall opens irisd's port" (
      builtins.elem 35742 config.networking.firewall.allowedTCPPorts
    )
  )
  ++ lib.optionals (name == "nebula") (
    expect "the substituter is irisd's loopback address" (
      builtins.elem "http://127.0.0.1:35742" config.nix.settings.substituters
    )
    ++ expect "the firewall is left alone without openFirewall" (
      config.networking.firewall.allowedTCPPorts == baseline.networking.firewall.allowedTCPPorts
    )
  )
