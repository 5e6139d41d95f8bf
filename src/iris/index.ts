/**
 * ogygia-irisd, the binary-cache daemon. Other folders need only its wire
 * contract (`contract.ts`); the program is `main.ts`, and the daemon's
 * layers (`http/`, `store/`, `p2p/`) are wired in `daemon.ts`; it logs
 * through `src/log`.
 */

export {
  DEFAULT_IRISD_CONFIG_PATH,
  DEFAULT_IRISD_URL,
  IRISD_CONFIG_ENV,
  type HealthAnswer,
  type Provider,
  type ProvidersAnswer,
  type RescanAnswer,
  type VersionAnswer,
} from "./contract.js";
export { advertisedIrisUrl, irisUrlFromConfigFile } from "./advertise.js";
export {
  MAX_CLOSURE_ROOTS,
  type ClosureAnswer,
  type ClosureEntry,
  type ClosureRequest,
} from "./closure-contract.js";
