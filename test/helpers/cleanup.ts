/**
 * A setup file of the integration tests (vitest.config.ts): after each test
 * file, after its own hooks, the configuration folders its tests wrote with
 * `writeConfig` are removed.
 */

import { afterAll } from "vitest";

import { removeWrittenConfigs } from "./system-root.js";

afterAll(removeWrittenConfigs);
