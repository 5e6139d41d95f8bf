/**
 * `ogygia publish`: keeps the fleet backend current with this host's states,
 * liveness and reboot-needed flag. See docs/publish.md.
 */

export {
  publishOnce,
  runDaemon,
  type DaemonRunOptions,
  type PublishOptions,
  type PublishResult,
} from "./command.js";
export { PublishDaemon, type DaemonLogger, type DaemonOptions } from "./daemon.js";
export {
  LOCAL_FIELDS,
  applyChanges,
  planPublication,
  readLocalPublication,
  storedValues,
  type Change,
  type LocalPublication,
  type PublicationPlan,
} from "./plan.js";
export { BOOT_LINKS, readBootLinks, rebootRequired, type BootLinks } from "./reboot.js";
export { publishJson, renderPublishText } from "./render.js";
export { Debouncer, StateLinkWatcher } from "./watch.js";
