/**
 * MMDetection 2.x `DeltaXYWHBBoxCoder`: boxes <-> (dx, dy, dw, dh) regression targets normalised
 * by `means`/`stds`. Pure TS over flat typed arrays; arithmetic in float64, results float32.
 */
import * as tf from '@tensorflow/tfjs';
import { assertBoxes } from './boxes.ts';

export interface DeltaCoderOptions {
  /** Target means subtracted from the deltas (default 0, 0, 0, 0). */
  means?: readonly number[];
  /** Target stds dividing the deltas (default 1, 1, 1, 1; RCNN heads use 0.1, 0.1, 0.2, 0.2). */
  stds?: readonly number[];
  /** Clip decoded boxes to `maxShape` when one is given (default true). */
  clipBorder?: boolean;
}

export class DeltaXYWHBBoxCoder {
  readonly means: readonly number[];
  readonly stds: readonly number[];
  readonly clipBorder: boolean;

  constructor(opts: DeltaCoderOptions = {}) {
    this.means = opts.means ?? [0, 0, 0, 0];
    this.stds = opts.stds ?? [1, 1, 1, 1];
    this.clipBorder = opts.clipBorder ?? true;
    if (this.means.length !== 4 || this.stds.length !== 4) {
      throw new Error(`DeltaXYWHBBoxCoder: expected 4 means and 4 stds, got ${this.means.length} and ${this.stds.length}`);
    }
  }

  /**
   * Deltas that move `proposals` `[N*4]` xyxy onto `gt` `[N*4]` xyxy -> `[N*4]` (dx, dy, dw, dh),
   * `((gx - px) / pw, (gy - py) / ph, log(gw / pw), log(gh / ph))`, then `(d - means) / stds`.
   */
  encode(proposals: Float32Array, gt: Float32Array): Float32Array {
    assertBoxes(proposals, 'DeltaXYWHBBoxCoder.encode(proposals)');
    if (gt.length !== proposals.length) {
      throw new Error(`DeltaXYWHBBoxCoder.encode: expected gt of the proposals' length ${proposals.length}, got ${gt.length}`);
    }
    const [m0, m1, m2, m3] = this.means, [s0, s1, s2, s3] = this.stds;
    const out = new Float32Array(proposals.length);
    for (let i = 0; i < proposals.length; i += 4) {
      const pw = proposals[i + 2] - proposals[i], ph = proposals[i + 3] - proposals[i + 1];
      const px = (proposals[i] + proposals[i + 2]) * 0.5, py = (proposals[i + 1] + proposals[i + 3]) * 0.5;
      const gw = gt[i + 2] - gt[i], gh = gt[i + 3] - gt[i + 1];
      const gx = (gt[i] + gt[i + 2]) * 0.5, gy = (gt[i + 1] + gt[i + 3]) * 0.5;
      out[i] = ((gx - px) / pw - m0) / s0;
      out[i + 1] = ((gy - py) / ph - m1) / s1;
      out[i + 2] = (Math.log(gw / pw) - m2) / s2;
      out[i + 3] = (Math.log(gh / ph) - m3) / s3;
    }
    return out;
  }

  /**
   * Applies `deltas` to `rois` `[N*4]` xyxy. `deltas` is `[N*4]` or class-specific `[N*4*C]`
   * (C groups of 4 per roi); the result has the deltas' shape. dw/dh are clamped to
   * `|log(whRatioClip)|`; with `clipBorder` and `maxShape` `[h, w]` boxes are clipped to the image.
   */
  decode(rois: Float32Array, deltas: Float32Array, maxShape?: readonly [number, number], whRatioClip = 16 / 1000): Float32Array {
    assertBoxes(rois, 'DeltaXYWHBBoxCoder.decode(rois)');
    const n = rois.length / 4;
    if (n === 0 ? deltas.length % 4 !== 0 : deltas.length % (4 * n) !== 0) {
      throw new Error(`DeltaXYWHBBoxCoder.decode: expected deltas of length N*4*C for N=${n} rois, got ${deltas.length}`);
    }
    const c = n === 0 ? 0 : deltas.length / (4 * n);
    const [m0, m1, m2, m3] = this.means, [s0, s1, s2, s3] = this.stds;
    const maxRatio = Math.abs(Math.log(whRatioClip));
    const clip = this.clipBorder && maxShape !== undefined;
    const [maxH, maxW] = maxShape ?? [0, 0];
    const out = new Float32Array(deltas.length);
    for (let r = 0; r < n; r++) {
      const x1 = rois[4 * r], y1 = rois[4 * r + 1], x2 = rois[4 * r + 2], y2 = rois[4 * r + 3];
      const px = (x1 + x2) * 0.5, py = (y1 + y2) * 0.5, pw = x2 - x1, ph = y2 - y1;
      for (let k = 0; k < c; k++) {
        const o = (r * c + k) * 4;
        const dx = deltas[o] * s0 + m0, dy = deltas[o + 1] * s1 + m1;
        const dw = Math.min(Math.max(deltas[o + 2] * s2 + m2, -maxRatio), maxRatio);
        const dh = Math.min(Math.max(deltas[o + 3] * s3 + m3, -maxRatio), maxRatio);
        const gw = pw * Math.exp(dw), gh = ph * Math.exp(dh);
        const gx = px + pw * dx, gy = py + ph * dy;
        let bx1 = gx - gw * 0.5, by1 = gy - gh * 0.5, bx2 = gx + gw * 0.5, by2 = gy + gh * 0.5;
        if (clip) {
          bx1 = Math.min(Math.max(bx1, 0), maxW);
          by1 = Math.min(Math.max(by1, 0), maxH);
          bx2 = Math.min(Math.max(bx2, 0), maxW);
          by2 = Math.min(Math.max(by2, 0), maxH);
        }
        out[o] = bx1;
        out[o + 1] = by1;
        out[o + 2] = bx2;
        out[o + 3] = by2;
      }
    }
    return out;
  }

  /**
   * {@link decode} on a tensor, differentiable in the deltas (for losses on decoded boxes, e.g.
   * GIoU): `rois` `[R*4]` xyxy, `deltas` `[R, 4]` → boxes `[R, 4]`, not clipped to the image (as
   * MMDet's `BBoxHead.loss`). dw/dh are clamped to `|log(whRatioClip)|` (no gradient beyond).
   */
  decodeTensor(rois: Float32Array, deltas: tf.Tensor2D, whRatioClip = 16 / 1000): tf.Tensor2D {
    assertBoxes(rois, 'DeltaXYWHBBoxCoder.decodeTensor(rois)');
    const n = rois.length / 4;
    if (deltas.rank !== 2 || deltas.shape[0] !== n || deltas.shape[1] !== 4) {
      throw new Error(`DeltaXYWHBBoxCoder.decodeTensor: expected deltas [${n}, 4], got [${deltas.shape}]`);
    }
    return tf.tidy(() => {
      const px = new Float32Array(n), py = new Float32Array(n), pw = new Float32Array(n), ph = new Float32Array(n);
      for (let r = 0; r < n; r++) {
        px[r] = (rois[4 * r] + rois[4 * r + 2]) * 0.5;
        py[r] = (rois[4 * r + 1] + rois[4 * r + 3]) * 0.5;
        pw[r] = rois[4 * r + 2] - rois[4 * r];
        ph[r] = rois[4 * r + 3] - rois[4 * r + 1];
      }
      const maxRatio = Math.abs(Math.log(whRatioClip));
      const d = tf.add(tf.mul(deltas, tf.tensor1d(this.stds as number[])), tf.tensor1d(this.means as number[]));
      const [dx, dy, dwRaw, dhRaw] = tf.unstack(d, 1);
      const [cx, cy, w, h] = [px, py, pw, ph].map((a) => tf.tensor1d(a));
      const gw = tf.mul(w, tf.exp(tf.clipByValue(dwRaw, -maxRatio, maxRatio)));
      const gh = tf.mul(h, tf.exp(tf.clipByValue(dhRaw, -maxRatio, maxRatio)));
      const gx = tf.add(cx, tf.mul(w, dx)), gy = tf.add(cy, tf.mul(h, dy));
      const hw = tf.mul(gw, 0.5), hh = tf.mul(gh, 0.5);
      return tf.stack([tf.sub(gx, hw), tf.sub(gy, hh), tf.add(gx, hw), tf.add(gy, hh)], 1) as tf.Tensor2D;
    });
  }
}
