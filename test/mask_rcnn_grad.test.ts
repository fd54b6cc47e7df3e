/**
 * The detector's gradients equal central finite differences of its total loss, for parameters of
 * every part (backbone, FPN, RPN, box head, mask head), with the sampling random stream replayed and
 * the proposals held fixed (they are a discrete, non-differentiable function of the weights, as in
 * MMDetection). This covers the custom gradients on the way: RoIAlign's, the deconv's, the losses'.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { loadConfig } from '../src/config/load.ts';
import { applyCfgOptions } from '../src/config/cfg_options.ts';
import { buildModel } from '../src/models/build.ts';
import type { MaskRCNN } from '../src/models/mask_rcnn.ts';
import { sumLosses } from '../src/models/model.ts';
import { globalRng, manualSeed } from '../src/nn/random.ts';
import { sceneBatch } from './helpers/det_batch.ts';

await tf.setBackend('cpu');

test('Mask R-CNN gradients match finite differences (proposals fixed)', async () => {
  manualSeed(0);
  const file = 'configs/maskrcnn_c2f_shapes.yaml';
  const cfg = applyCfgOptions(loadConfig(file), ['model.roi_head.bbox_head.num_classes=2', 'model.roi_head.mask_head.num_classes=2']) as { model: unknown };
  const m = (await buildModel(cfg.model, { file, log: () => {} })) as MaskRCNN;
  m.eval(); // BatchNorm with running statistics: the loss is a plain function of the weights
  const batch = sceneBatch(undefined, 96);
  const rng = globalRng.getState();
  const propose = m.rpnHead.proposals.bind(m.rpnHead);
  let fixed: ReturnType<typeof propose> | null = null;
  m.rpnHead.proposals = (...a) => (fixed ??= propose(...a));
  const total = () => {
    globalRng.setState(rng);
    return tf.tidy(() => sumLosses(m.loss(batch)).dataSync()[0]);
  };
  const params = new Map(m.namedParameters());
  globalRng.setState(rng);
  const { value, grads } = tf.variableGrads(() => sumLosses(m.loss(batch)), m.trainableVariables());
  value.dispose();
  for (const name of ['backbone.downsample_layers.0.0.weight', 'backbone.norm0.weight', 'neck.lateral_convs.0.conv.weight', 'rpn_head.rpn_conv.weight',
    'rpn_head.rpn_reg.bias', 'roi_head.bbox_head.shared_fcs.0.weight', 'roi_head.bbox_head.fc_cls.bias', 'roi_head.mask_head.convs.0.conv.weight',
    'roi_head.mask_head.upsample.weight']) {
    const v = params.get(name)!.variable;
    const g = grads[v.name].dataSync();
    let i = 0;
    for (let k = 1; k < g.length; k++) if (Math.abs(g[k]) > Math.abs(g[i])) i = k;
    const data = (v.dataSync() as Float32Array).slice();
    const orig = data[i];
    const eps = Math.max(1e-3, Math.abs(orig) * 1e-2);
    const at = (x: number) => {
      data[i] = x;
      tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
      return total();
    };
    const numeric = (at(orig + eps) - at(orig - eps)) / (2 * eps);
    at(orig);
    assert.ok(Math.abs(g[i] - numeric) <= 0.03 * Math.abs(numeric) + 1e-4, `${name}[${i}]: analytic ${g[i]}, numeric ${numeric}`);
  }
  tf.dispose(Object.values(grads));
  batch.dispose();
  m.dispose();
});
