/**
 * What each command group is for: shown by `ogygia <group> --help` and by
 * shell completion. A group is the first word of several commands.
 */
export const GROUP_SUMMARIES: Readonly<Record<string, string>> = {
  iris: "ask the local ogygia-irisd, the fleet's peer-to-peer Nix binary cache",
  config: "check ogygia's configuration file",
  nebula: "manage the fleet's Nebula mesh: the CA, hosts' keys, certificates and addresses",
  "nebula ca": "the Nebula mesh's certificate authority",
  rollout: "move the fleet to a release in waves, with health-gated rollback (docs/updates.md)",
  fleet: "per-host credentials: which host may write which keys (run with admin credentials)",
};
