/**
 * Text renderings of `diff`, `who-runs` and `impact` (`--json` prints the
 * results as they are). Strings from the fleet and the store are escaped.
 */

import { formatTable, type OutputLine } from "../command/index.js";
import { escapeForTerminal, prepareDisplayWidth } from "../core/index.js";
import { formatBytes, showVersions } from "./diff.js";
import type { DiffResult, ImpactGroup, ImpactResult, WhoRunsResult } from "./run.js";

const out = (text: string): OutputLine => ({ stream: "stdout", text: escapeForTerminal(text) });
const err = (text: string): OutputLine => ({ stream: "stderr", text: escapeForTerminal(text) });

function versions(list: readonly string[]): string {
  return showVersions(list);
}

/** nvd's layout: version changes, added, removed, then the closure size line. */
export function renderDiff(result: DiffResult): OutputLine[] {
  const lines: OutputLine[] = [out(`<<< ${result.before.path}`), out(`>>> ${result.after.path}`)];
  const section = (title: string, tag: string, rows: string[][]): void => {
    if (rows.length === 0) return;
    lines.push(out(`${title}:`));
    // Store path names are ASCII: their length is their width.
    const width = rows.reduce((w, row) => Math.max(w, row[0]?.length ?? 0), 0);
    const number = String(rows.length).length + 1;
    rows.forEach(([name = "", versionText = ""], i) => {
      lines.push(
        out(`  [${tag}]  ${`#${i + 1}`.padEnd(number)}  ${name.padEnd(width)}  ${versionText}`),
      );
    });
  };
  section(
    "Version changes",
    "U",
    result.changed.map((c) => [c.name, `${versions(c.before)} -> ${versions(c.after)}`]),
  );
  section(
    "Added packages",
    "A",
    result.added.map((a) => [a.name, versions(a.versions)]),
  );
  section(
    "Removed packages",
    "R",
    result.removed.map((r) => [r.name, versions(r.versions)]),
  );
  if (result.changed.length + result.added.length + result.removed.length === 0) {
    lines.push(out("No version changes."));
  }
  lines.push(
    out(
      `Closure size: ${result.before.paths} -> ${result.after.paths} ` +
        `(${result.pathsAdded} paths added, ${result.pathsRemoved} paths removed, ` +
        `delta ${result.after.paths - result.before.paths >= 0 ? "+" : ""}${result.after.paths - result.before.paths}, ` +
        `disk usage ${formatBytes(result.sizeDelta, true)}).`,
    ),
  );
  return lines;
}

/** The hosts that run the pattern, with the matching paths; problems on stderr. */
export function renderWhoRuns(result: WhoRunsResult): OutputLine[] {
  const lines: OutputLine[] = [];
  if (result.hosts.length === 0) {
    lines.push(out(`no host runs ${result.pattern}`));
  } else {
    for (const host of result.hosts) {
      lines.push(out(host.host));
      for (const match of host.matches) {
        for (const path of match.paths) lines.push(out(`  ${match.state}: ${path}`));
      }
    }
  }
  const asked = result.states.join(", ");
  lines.push(
    err(
      `${result.hosts.length} of ${result.hostsChecked} hosts run ${result.pattern} (${asked}); ` +
        `${result.stats.irisdRequests} irisd requests, ${result.stats.localReads} local reads`,
    ),
  );
  for (const p of result.unreadable) {
    lines.push(
      err(`error: ${p.host} (${p.state} ${p.system ?? "?"}) could not be read: ${p.reason}`),
    );
  }
  for (const p of result.unknown) lines.push(err(`warning: ${p.host}: ${p.reason}`));
  for (const w of result.warnings) lines.push(err(`warning: ${w}`));
  return lines;
}

function unitSummary(group: ImpactGroup): string {
  const { restart, start, stop } = group.impact.units;
  return `${restart.length}/${start.length}/${stop.length}`;
}

function packageSummary(group: ImpactGroup): string {
  const p = group.impact.packages;
  const parts: string[] = [];
  if (p.changed.length > 0) parts.push(`${p.changed.length} changed`);
  if (p.added.length > 0) parts.push(`${p.added.length} added`);
  if (p.removed.length > 0) parts.push(`${p.removed.length} removed`);
  return parts.length === 0 ? "-" : parts.join(", ");
}

function hostList(group: ImpactGroup): string {
  return group.hosts.map((h) => h.host).join(", ");
}

/** A summary table (one row per group), then each group in detail. */
export async function renderImpact(result: ImpactResult): Promise<OutputLine[]> {
  const s = result.summary;
  const lines: OutputLine[] = [
    out(
      `Impact of ${result.release} on ${s.hosts} host${s.hosts === 1 ? "" : "s"}: ` +
        `${s.changes} changing (${s.reboot} need a reboot), ${s.unchanged} unchanged, ` +
        `${s.unreadable} unreadable, ${s.unknown} unknown`,
    ),
    out(""),
  ];
  const rows = [
    ["Group", "Hosts", "Impact", "Packages", "Units restart/start/stop", "Reboot", "Size"],
    ...result.groups.map((g) => [
      String(g.id),
      String(g.hosts.length),
      g.impact.status,
      packageSummary(g),
      g.impact.status === "changes" ? unitSummary(g) : "-",
      g.impact.status === "changes" ? (g.impact.reboot ? "yes" : "no") : "-",
      g.impact.status === "changes" ? formatBytes(g.impact.sizeDelta, true) : "-",
    ]),
  ];
  await prepareDisplayWidth(rows.flat());
  for (const line of formatTable(rows)) lines.push({ stream: "stdout", text: line });
  for (const group of result.groups) {
    const i = group.impact;
    lines.push(out(""));
    lines.push(out(`Group ${group.id} (${group.hosts.length}, ${i.status}): ${hostList(group)}`));
    if (i.reason !== null) lines.push(out(`  ${i.reason}`));
    for (const c of i.packages.changed) {
      lines.push(out(`  ${c.name}: ${versions(c.before)} -> ${versions(c.after)}`));
    }
    for (const a of i.packages.added) lines.push(out(`  added ${a.name} ${versions(a.versions)}`));
    for (const r of i.packages.removed)
      lines.push(out(`  removed ${r.name} ${versions(r.versions)}`));
    if (i.units.restart.length > 0) lines.push(out(`  restart: ${i.units.restart.join(" ")}`));
    if (i.units.start.length > 0) lines.push(out(`  start: ${i.units.start.join(" ")}`));
    if (i.units.stop.length > 0) lines.push(out(`  stop: ${i.units.stop.join(" ")}`));
    if (i.reboot) lines.push(out(`  reboot: yes (${i.bootLinksChanged.join(", ")} differ)`));
    if (i.status === "changes") lines.push(out(`  size: ${formatBytes(i.sizeDelta, true)}`));
  }
  for (const w of result.warnings) lines.push(err(`warning: ${w}`));
  return lines;
}
