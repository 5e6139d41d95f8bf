export {
  loadConfig,
  parseConfig,
  parseHostPort,
  parseRebootWindow,
  type BackendConfig,
  type BuilderConfig,
  type UpdateConfig,
  type ConfigSource,
  type OgygiaConfig,
} from "./ogygia.js";
export {
  boolean,
  integer,
  locateKeys,
  number,
  parseTomlText,
  string,
  stringList,
  table,
  whereIs,
  type FieldType,
  type SchemaContext,
} from "./schema.js";
