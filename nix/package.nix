# The ogygia package: the `ogygia` CLI and the `ogygia-irisd` daemon, built
# from this repository with the dependencies package-lock.json pins (no
# dependency hash to keep current).
{
  lib,
  buildNpmPackage,
  importNpmLock,
  nodejs,
  python3,
  # Where tarballs the lock file names without a `resolved` URL are fetched
  # from (the repository's lock omits registry URLs): the npm registry
  # protocol's `<registry>/<name>/-/<basename>-<version>.tgz`.
  npmRegistry ? "https://registry.npmjs.org",
}:
let
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../package.json
      ../package-lock.json
      ../bin
      ../scripts/build-code-cache.js
      ../scripts/bundle-cli.js
      ../scripts/launch.cjs
      ../src
      ../LICENSE
      ../README.md
    ];
  };

  packageJson = lib.importJSON ../package.json;
  lock = lib.importJSON ../package-lock.json;

  # "node_modules/@scope/name" or "node_modules/a/node_modules/b" -> the package name.
  packageName = path: builtins.head (builtins.match ".*node_modules/(.*)" path);
  withResolved =
    path: entry:
    if path == "" || entry ? resolved || entry ? link || !(entry ? version) then
      entry
    else
      let
        name = packageName path;
      in
      entry
      // {
        resolved = "${npmRegistry}/${name}/-/${lib.last (lib.splitString "/" name)}-${entry.version}.tgz";
      };
  packageLock = lock // {
    packages = lib.mapAttrs withResolved lock.packages;
  };
in
buildNpmPackage {
  pname = packageJson.name;
  inherit (packageJson) version;
  inherit src;

  # The bin wrappers run the bundle with this Node. It is nixpkgs' default
  # Node, the one importNpmLock's hook builds addons against (its headers),
  # so better-sqlite3's ABI matches the Node that loads it.
  inherit nodejs;

  npmDeps = importNpmLock {
    npmRoot = src;
    inherit packageLock;
  };
  npmConfigHook = importNpmLock.npmConfigHook;

  # esbuild bundles src/ into dist/bundle, and this Node makes the CLI's V8
  # code cache of it (dist/code-cache); `npm test` type-checks, not this.
  npmBuildScript = "bundle";
  # The dashboard's page: bundled for the browser into dist/bundle/dashboard.
  postBuild = "npm run bundle:dashboard";

  # better-sqlite3 and zstd-napi from source in the sandbox, never a
  # downloaded prebuild (zstd-napi's install runs `prebuild-install || node-gyp rebuild`).
  nativeBuildInputs = [ python3 ];
  env.npm_config_build_from_source = "true";

  # Of better-sqlite3's build keep the addon alone: its sources, object files
  # and makefiles (26 MB) are dead weight at run time, and the makefiles
  # name python3 and Node's headers, which would join every closure.
  postInstall = ''
    sqlite=$out/lib/node_modules/ogygia/node_modules/better-sqlite3
    mv "$sqlite/build/Release/better_sqlite3.node" "$TMPDIR/"
    rm -rf "$sqlite/build" "$sqlite/deps" "$sqlite/src"
    install -Dm444 "$TMPDIR/better_sqlite3.node" "$sqlite/build/Release/better_sqlite3.node"

    # The same for zstd-napi (irisd's [server] compression = "zstd"): its
    # binding.js loads build/Release/binding.node; libzstd's sources go.
    zstd=$out/lib/node_modules/ogygia/node_modules/zstd-napi
    mv "$zstd/build/Release/binding.node" "$TMPDIR/zstd-binding.node"
    rm -rf "$zstd/build" "$zstd/deps" "$zstd/src"
    install -Dm444 "$TMPDIR/zstd-binding.node" "$zstd/build/Release/binding.node"

    # The CLI's V8 code cache fits only the Node that made it (V8 refuses it
    # elsewhere), so the npm package leaves it out; here that Node is the
    # wrappers' Node. bin/ogygia is a shell launcher that runs node from PATH
    # on dist/bundle/launch.cjs: the wrapper runs the launcher (not node on
    # it) with this Node first on PATH.
    cp -a dist/code-cache "$out/lib/node_modules/ogygia/dist/code-cache"
    makeWrapper "$out/lib/node_modules/ogygia/bin/ogygia" "$out/bin/ogygia" \
      --prefix PATH : ${nodejs}/bin
  '';

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    $out/bin/ogygia --version
    $out/bin/ogygia-irisd --version
    test -s $out/lib/node_modules/ogygia/dist/bundle/dashboard/app.js
    # Loads the native addon with the wrapper's Node.
    ${nodejs}/bin/node -e 'new (require(process.argv[1]))(":memory:").close()' \
      $out/lib/node_modules/ogygia/node_modules/better-sqlite3
    ${nodejs}/bin/node -e 'const z = require(process.argv[1]); if (z.decompress(z.compress(Buffer.from("nar"))).toString() !== "nar") process.exit(1)' \
      $out/lib/node_modules/ogygia/node_modules/zstd-napi
    runHook postInstallCheck
  '';

  meta = {
    description = packageJson.description;
    license = lib.licenses.mit;
    mainProgram = "ogygia";
    platforms = lib.platforms.linux;
  };
}
