/** Config loading (`_base_` inheritance, `--cfg-options`), schema validation, dumping, registries. */
export { ConfigError, closest, didYouMean, editDistance } from './errors.ts';
export { loadConfig, mergeConfig, isDict, type Config, type LoadConfigOptions } from './load.ts';
export { applyCfgOptions, parseCfgOption, parseOptionValue, type CfgOptionsOptions } from './cfg_options.ts';
export { any, bool, byType, int, list, lookupType, nul, num, obj, oneOf, optional, refine, str, validate, type Infer, type Schema, type TypedBlock } from './schema.ts';
export { experimentSchema, validateExperimentConfig, type ExperimentConfig } from './experiment.ts';
export { dumpConfig, configToYaml } from './dump.ts';
export { Registry } from './registry.ts';
