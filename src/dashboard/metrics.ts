/**
 * `/metrics`: the fleet as Prometheus gauges, computed from the dashboard's
 * current view of the fleet when scraped.
 */

import { Gauge, Registry, Summary, collectDefaultMetrics } from "prom-client";

import type { FleetJson } from "./wire.js";

export interface DashboardMetrics {
  render(): Promise<{ contentType: string; body: string }>;
}

/** Metrics read from `fleet()` at each scrape. */
export function createMetrics(fleet: () => FleetJson | undefined): DashboardMetrics {
  const registry = new Registry();
  // Event-loop lag sampled every 100 ms, not every 10 ms (as irisd's metrics).
  collectDefaultMetrics({
    register: registry,
    prefix: "ogygia_dashboard_",
    eventLoopMonitoringPrecision: 100,
  });
  new Gauge({
    name: "ogygia_fleet_hosts",
    help: "Hosts by publisher state (online, offline, unknown).",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      this.reset();
      const counts = { online: 0, offline: 0, unknown: 0 };
      for (const host of fleet()?.hosts ?? []) {
        counts[host.online === null ? "unknown" : host.online ? "online" : "offline"] += 1;
      }
      for (const [state, count] of Object.entries(counts)) this.set({ state }, count);
    },
  });
  new Gauge({
    name: "ogygia_fleet_hosts_reboot_required",
    help: "Hosts whose published reboot check says a reboot is required.",
    registers: [registry],
    collect() {
      this.set((fleet()?.hosts ?? []).filter((h) => h.rebootRequired === true).length);
    },
  });
  new Gauge({
    name: "ogygia_fleet_hosts_per_revision",
    help: "Hosts by the revision of their current system (empty: unknown).",
    labelNames: ["revision"],
    registers: [registry],
    collect() {
      this.reset();
      const counts = new Map<string, number>();
      for (const host of fleet()?.hosts ?? []) {
        const revision = host.current ?? "";
        counts.set(revision, (counts.get(revision) ?? 0) + 1);
      }
      for (const [revision, count] of counts) this.set({ revision }, count);
    },
  });
  new Summary({
    name: "ogygia_fleet_host_update_age_seconds",
    help: "Seconds since each host's last published update (updated_at), over the hosts that have one, at scrape time.",
    percentiles: [0.5, 0.9, 0.99, 1],
    registers: [registry],
    collect() {
      this.reset();
      const now = Date.now();
      for (const host of fleet()?.hosts ?? []) {
        if (host.updatedAt === null) continue;
        const at = Date.parse(host.updatedAt);
        if (Number.isFinite(at)) this.observe(Math.max(0, (now - at) / 1000));
      }
    },
  });
  new Gauge({
    name: "ogygia_fleet_backend_reachable",
    help: "1 when the last read of the fleet backend succeeded, else 0.",
    registers: [registry],
    collect() {
      const current = fleet();
      this.set(current?.error === null ? 1 : 0);
    },
  });
  return {
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
