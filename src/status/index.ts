export { collectStatus } from "./collect.js";
export { renderStatusText, statusJson } from "./render.js";
export { watchPrinter, watchStatus } from "./watch.js";
