/**
 * ogygia-irisd, the binary-cache daemon. The program is `main.ts`; the
 * daemon's layers (`http/`, `store/`, `p2p/`, `log/`) are wired in
 * `daemon.ts`. No other folder imports the daemon today.
 */

export {};
