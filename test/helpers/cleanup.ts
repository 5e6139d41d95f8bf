/**
 * A setup file of the unit and integration tests (vitest.config.ts): after
 * each test file, after its own hooks, the temporary folders its tests made
 * with test/helpers/temp.ts are removed.
 */

import { afterAll } from "vitest";

import { removeTempDirs } from "../support/temp.js";

afterAll(removeTempDirs);
