# Calls nix/package.nix with stub builders and returns what it passes them,
# so tests can check the package's build settings and the lock file it
# fetches from without nixpkgs:
#
#   nix-instantiate --eval --strict --json test/nix/package-args.nix \
#     --arg lib 'import <nixpkgs-lib>/lib'
{ lib }:
let
  attrs = import ../../nix/package.nix {
    inherit lib;
    buildNpmPackage = args: args;
    importNpmLock = {
      __functor = _: args: { inherit (args) packageLock; };
      npmConfigHook = "importNpmLock.npmConfigHook";
    };
    nodejs = "nodejs";
    python3 = "python3";
    npmRegistry = "https://registry.example";
  };
in
{
  inherit (attrs)
    pname
    version
    nodejs
    npmBuildScript
    postBuild
    nativeBuildInputs
    env
    npmConfigHook
    installCheckPhase
    postInstall
    meta
    ;
  lockPackages = attrs.npmDeps.packageLock.packages;
}
