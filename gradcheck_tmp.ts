import * as tf from '@tensorflow/tfjs';
import { loadConfig } from './src/config/load.ts';
import { applyCfgOptions } from './src/config/cfg_options.ts';
import { buildModel } from './src/models/build.ts';
import { globalRng, manualSeed } from './src/nn/random.ts';
import { sumLosses } from './src/models/model.ts';
import { sceneBatch } from './test/helpers/det_batch.ts';
await tf.setBackend(process.argv[2] ?? 'cpu');
manualSeed(0);
const file = 'configs/maskrcnn_c2f_shapes.yaml';
const cfg = applyCfgOptions(loadConfig(file), ['model.roi_head.bbox_head.num_classes=2', 'model.roi_head.mask_head.num_classes=2']) as any;
const m = await buildModel(cfg.model, { file, log: () => {} });
m.eval(); // BN with running stats: a deterministic function of the weights
const batch = sceneBatch();
const state = globalRng.getState();
const rpn = (m as any).rpnHead;
const origProps = rpn.proposals.bind(rpn);
let cached: any = null;
rpn.proposals = (...a: any[]) => (cached ??= origProps(...a));
const parts = (key?: string) => {
  globalRng.setState(state);
  return tf.tidy(() => { const o = m.loss(batch); return key ? o[key].dataSync()[0] : sumLosses(o).dataSync()[0]; });
};
const named = new Map(m.namedParameters());
const vars = m.trainableVariables();
globalRng.setState(state);
const { grads } = tf.variableGrads(() => sumLosses(m.loss(batch)), vars);
const pick = ['backbone.downsample_layers.0.0.weight', 'backbone.norm0.weight', 'backbone.stages.0.0.attn.v.weight', 'neck.lateral_convs.0.conv.weight', 'neck.fpn_convs.1.conv.weight', 'rpn_head.rpn_conv.weight', 'rpn_head.rpn_reg.bias',
  'roi_head.bbox_head.shared_fcs.0.weight', 'roi_head.bbox_head.fc_reg.weight', 'roi_head.bbox_head.fc_cls.bias', 'roi_head.mask_head.convs.0.conv.weight', 'roi_head.mask_head.upsample.weight', 'roi_head.mask_head.conv_logits.weight'];
for (const name of pick) {
  const p = named.get(name);
  if (!p) { console.log('missing', name); continue; }
  const v = p.variable;
  const g = grads[v.name].dataSync();
  // the elements with the largest |grad|
  const idx = Array.from(g.keys()).sort((a, b) => Math.abs(g[b]) - Math.abs(g[a])).slice(0, 3);
  for (const i of idx) {
    const data = v.dataSync().slice() as Float32Array;
    const orig = data[i];
    const eps = Math.max(1e-3, Math.abs(orig) * 1e-2);
    data[i] = orig + eps; v.assign(tf.tensor(data, v.shape));
    const fp = parts();
    data[i] = orig - eps; v.assign(tf.tensor(data, v.shape));
    const fm = parts();
    data[i] = orig; v.assign(tf.tensor(data, v.shape));
    const num = (fp - fm) / (2 * eps);
    console.log(name.padEnd(45), i, 'analytic', g[i].toExponential(3), 'numeric', num.toExponential(3), 'ratio', (g[i] / num).toFixed(3));
  }
}
