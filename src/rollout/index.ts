/**
 * Automated updates in waves (`ogygia rollout`, `ogygia update`): the plan
 * in the fleet store, the per-host agent with health-gated rollback. See
 * docs/updates.md.
 */

export { MAX_REBOOTS_BACK, runAgent, type AgentOptions, type UpdateSettings } from "./agent.js";
export {
  readRelease,
  rolloutStatus,
  setRolloutState,
  startRollout,
  type Fleet,
} from "./operate.js";
export { computeWaves, makePlan, parseRelease, type Plan, type Release } from "./plan.js";
export {
  UPDATE_STATES,
  hostUpdate,
  progressOf,
  type HostUpdate,
  type Progress,
  type UpdateState,
} from "./progress.js";
export { renderProgress } from "./render.js";
export { planKey, readPlan, rolloutPrefix } from "./store.js";
export { loadRecord, type AgentRecord } from "./state-file.js";
export { realise, type RealiseOptions } from "./host-system.js";
export { openFleet, runUpdateCommand, withFleet, type UpdateCommandOptions } from "./command.js";
