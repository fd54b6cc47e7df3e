/**
 * Epoch-based schedules (MMDet recipes): `schedule.max_epochs` / `by_epoch` validation, iterations
 * per epoch, `resolveSchedule` (the one place epochs become iterations) and the lr it gives.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, EXPERIMENT_OPEN_PATHS, loadConfig, validateExperimentConfig, type ScheduleBlock } from '../src/config/index.ts';
import { itersPerEpoch, lrAt, resolveSchedule, type LrScheduleConfig } from '../src/engine/lr_schedule.ts';

/** A whole experiment config (JSON is YAML) with `schedule`; returns its path. */
function configFile(schedule: Record<string, unknown>): string {
  const cfg = {
    model: { type: 'EncoderDecoder' },
    data: { batch_size: 2, train: { type: 'ShapesDataset' }, val: { type: 'ShapesDataset' } },
    optimizer: { type: 'AdamW', lr: 0.02, weight_decay: 0.0001 },
    schedule,
    train: { eval_interval: 1, checkpoint_interval: 1, log_interval: 1, accumulate: 2 },
  };
  const file = join(mkdtempSync(join(tmpdir(), 'schedule-test-')), 'x.yaml');
  writeFileSync(file, JSON.stringify(cfg));
  return file;
}

/** The validated schedule block of `schedule` after `cfgOptions`, as tools/train.ts reads it. */
function scheduleOf(schedule: Record<string, unknown>, cfgOptions: string[] = []): ScheduleBlock {
  const file = configFile(schedule);
  return validateExperimentConfig(loadConfig(file, { cfgOptions, openPaths: EXPERIMENT_OPEN_PATHS }), 'configs/x.yaml').schedule;
}

const STEP_36E = { max_epochs: 36, by_epoch: true, policy: 'step', steps: [27, 33], warmup_iters: 500, warmup_ratio: 0.001 };

function throwsConfig(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => e instanceof ConfigError && e.message.startsWith(message), message);
}

test('itersPerEpoch = max(1, floor(len / (batch_size * accumulate))): one iteration is one optimiser step', () => {
  assert.equal(itersPerEpoch(118287, 16), 7392);
  assert.equal(itersPerEpoch(100, 4, 2), 12);
  assert.equal(itersPerEpoch(100, 3), 33);
  assert.equal(itersPerEpoch(5, 4, 2), 1, 'at least one');
  assert.throws(() => itersPerEpoch(100, 0), /batchSize must be a positive integer, got 0/);
  assert.throws(() => itersPerEpoch(100, 2, 1.5), /accumulate must be a positive integer, got 1.5/);
});

test('an iteration schedule resolves to itself', () => {
  const s = scheduleOf({ max_iters: 160000, warmup_iters: 1500, policy: 'poly' });
  assert.equal(s.by_epoch, false);
  assert.deepEqual(resolveSchedule(s, 7), { maxIters: 160000, scheduleIters: 160000, warmupIters: 1500, itersPerEpoch: 7 });
  const step = scheduleOf({ max_iters: 100, warmup_iters: 0, policy: 'step', steps: [60, 90] });
  assert.deepEqual(resolveSchedule(step, 7).steps, [60, 90], 'steps stay iterations without by_epoch');
});

test('max_epochs with by_epoch: 36 epochs, lr x0.1 when epochs 27 and 33 start (MMDet 3x recipe)', () => {
  const ipe = 100;
  const r = resolveSchedule(scheduleOf(STEP_36E), ipe);
  assert.deepEqual(r, { maxIters: 3600, scheduleIters: 3600, steps: [2700, 3300], warmupIters: 500, itersPerEpoch: ipe });
  const lr: LrScheduleConfig = { policy: 'step', base_lr: 0.02, max_iters: r.scheduleIters, steps: r.steps, gamma: 0.1, warmup: 'linear', warmup_iters: r.warmupIters, warmup_ratio: 0.001 };
  // MMCV by_epoch step: lr = base * gamma^(milestones <= epoch), epoch = floor(iter / ipe).
  for (const iter of [500, 2699, 2700, 3299, 3300, 3599]) {
    const epoch = Math.floor(iter / ipe);
    const k = [27, 33].filter((e) => e <= epoch).length;
    assert.ok(Math.abs(lrAt(iter, lr) - 0.02 * 0.1 ** k) < 1e-12, `iter ${iter} (epoch ${epoch})`);
  }
  assert.ok(lrAt(0, lr) < 0.02 * 0.01, 'warmup stays in iterations');
  // Without by_epoch the same steps are iterations; epochs still set the length.
  const iterSteps = resolveSchedule(scheduleOf({ ...STEP_36E, by_epoch: false, steps: [2000, 3000] }), ipe);
  assert.deepEqual([iterSteps.maxIters, iterSteps.steps], [3600, [2000, 3000]]);
  // poly over epochs decays per iteration across max_epochs * itersPerEpoch.
  const poly = resolveSchedule(scheduleOf({ max_epochs: 12, warmup_iters: 0, policy: 'poly' }), 50);
  assert.deepEqual([poly.maxIters, poly.scheduleIters], [600, 600]);
});

test('--cfg-options schedule.max_iters=N caps an epoch recipe (the lr still follows the recipe)', () => {
  const capped = resolveSchedule(scheduleOf(STEP_36E, ['schedule.max_iters=4']), 100);
  assert.deepEqual(capped, { maxIters: 4, scheduleIters: 3600, steps: [2700, 3300], warmupIters: 500, itersPerEpoch: 100 });
  // A cap beyond the recipe does not lengthen it.
  assert.equal(resolveSchedule(scheduleOf(STEP_36E, ['schedule.max_iters=100000']), 100).maxIters, 3600);
  // And on an iteration config it is the length, as before.
  assert.equal(resolveSchedule(scheduleOf({ max_iters: 1000, warmup_iters: 0, policy: 'poly' }, ['schedule.max_iters=6']), 3).maxIters, 6);
  // Epochs can be given on the command line too.
  assert.equal(resolveSchedule(scheduleOf({ max_iters: 1000, warmup_iters: 0, policy: 'poly' }, ['schedule.max_epochs=2']), 3).maxIters, 6);
});

test('schedule errors name the key', () => {
  throwsConfig(() => scheduleOf({ warmup_iters: 0, policy: 'poly' }), 'configs/x.yaml: schedule: give max_iters or max_epochs');
  throwsConfig(() => scheduleOf({ ...STEP_36E, max_epochs: 0 }), 'configs/x.yaml: schedule.max_epochs: expected an integer >= 1, got 0');
  throwsConfig(() => scheduleOf({ ...STEP_36E, by_epoch: 'yes' }), 'configs/x.yaml: schedule.by_epoch: expected true or false, got "yes"');
  throwsConfig(() => scheduleOf({ ...STEP_36E, steps: [] }), "configs/x.yaml: schedule: policy 'step' needs 'steps' (the epochs at which lr is multiplied by gamma)");
  throwsConfig(() => scheduleOf({ ...STEP_36E, policy: 'cosine' }), "configs/x.yaml: schedule: by_epoch: true is for policy 'step'");
  throwsConfig(() => scheduleOf({ ...STEP_36E, max_epoch: 36 }), "configs/x.yaml: schedule.max_epoch: unknown key 'max_epoch'");
  // --cfg-options may add schedule keys, but a misspelt one still fails validation, naming it.
  throwsConfig(() => scheduleOf(STEP_36E, ['schedule.max_iter=4']), "configs/x.yaml: schedule.max_iter: unknown key 'max_iter'");
  assert.throws(() => resolveSchedule(scheduleOf(STEP_36E), 0), /itersPerEpoch must be a positive integer, got 0/);
});
