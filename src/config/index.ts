/** Config loading (`_base_` inheritance, `--cfg-options`), schema validation, dumping, `type:` tables. */
export { ConfigError, closest, didYouMean, editDistance } from './errors.ts';
export { loadConfig, mergeConfig, isDict, type Config, type LoadConfigOptions } from './load.ts';
export { applyCfgOptions, parseCfgOption, parseOptionValue, type CfgOptionsOptions } from './cfg_options.ts';
export { any, bool, byType, int, list, nul, num, obj, oneOf, optional, refine, str, validate, type Infer, type Schema, type TypedBlock } from './schema.ts';
export { EXPERIMENT_OPEN_PATHS, experimentSchema, validateExperimentConfig, type ExperimentConfig, type ScheduleBlock } from './experiment.ts';
export { dumpConfig, configToYaml } from './dump.ts';
export { buildFromTable, childPath, lookupType, typeSpec, type ConfigAt, type TypeSpec } from './lookup.ts';
