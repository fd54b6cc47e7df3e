/**
 * The page: loads an ONNX UperNet segmentor exported by `tools/export.ts --format onnx --config ...`
 * (and its `.json` sidecar beside it) with onnxruntime-web, segments a picked image and draws the
 * prediction over it.
 *
 * Query string:
 *   ?model=URL   the .onnx file (default `model/seg.onnx`); the sidecar is the same URL with `.json`
 *   ?image=URL   segment this image at once instead of waiting for the file picker
 *   ?scale=W,H   Resize scale of the test pipeline when the sidecar has none (default 256,128: the
 *                shapes config)
 * For automation: when a prediction is done `window.c2fResult` holds `{width, height, numClasses,
 * labels}` (`labels`: base64 of the `height * width` uint8 class ids, row-major) and `<body>` gets
 * `data-done`; on a failure the error is shown in the page, set as `window.c2fError` and as
 * `<body data-error>`.
 */
import * as ort from 'onnxruntime-web';
import { normalizeToNchw, rescaleSize, resizeArgmax, resizeImageBilinear, resizeLogitsBilinear } from './preprocess.js';

const params = new URLSearchParams(location.search);
const modelUrl = new URL(params.get('model') ?? 'model/seg.onnx', location.href).href;
const sidecarUrl = modelUrl.replace(/\.onnx$/, '') + '.json';
const $ = (id) => document.getElementById(id);

ort.env.wasm.wasmPaths = new URL('ort/', location.href).href;

function setStatus(text) { $('status').textContent = text; }

function fail(e) {
  const msg = e instanceof Error ? e.message : String(e);
  console.error(e);
  window.c2fError = msg;
  $('error').textContent = `Error: ${msg}`;
  document.body.dataset.error = msg;
  setStatus('failed');
}

/** The palette tools/test.ts uses for datasets without one (src/evaluation/prediction_writers.ts). */
function defaultPalette(k) {
  let s = 7;
  const r = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 24);
  return Array.from({ length: k }, () => [r(), r(), r()]);
}

function parseScale(text) {
  const v = text.split(',').map(Number);
  if (v.length !== 2 || !v.every((x) => x > 0)) throw new Error(`?scale must be W,H, got '${text}'`);
  return v;
}

/** Session and preprocessing settings: the sidecar's normalize/classes/palette, the Resize scale. */
async function loadModel() {
  const res = await fetch(sidecarUrl);
  if (!res.ok) throw new Error(`cannot load the sidecar ${sidecarUrl}: HTTP ${res.status} (export with tools/export.ts --format onnx --config ...)`);
  const info = await res.json();
  const session = await ort.InferenceSession.create(modelUrl, { executionProviders: ['wasm'] });
  const resize = info.input?.resize;
  return {
    session,
    norm: info.input?.normalize ?? { mean: [0, 0, 0], std: [1, 1, 1] },
    scale: resize?.scale ?? parseScale(params.get('scale') ?? '256,128'),
    keepRatio: resize?.keep_ratio ?? true,
    classes: info.classes,
    palette: info.palette,
  };
}

/** RGB bytes `[h, w, 3]` of an image, EXIF orientation applied (as the pipeline's sharp `.rotate()`). */
async function decodeRgb(blob) {
  const bmp = await createImageBitmap(blob, { imageOrientation: 'from-image', premultiplyAlpha: 'none' });
  const { width: w, height: h } = bmp;
  const canvas = new OffscreenCanvas(w, h);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bmp, 0, 0);
  bmp.close();
  const rgba = ctx.getImageData(0, 0, w, h).data;
  const rgb = new Uint8Array(w * h * 3);
  for (let p = 0; p < w * h; p++) {
    rgb[p * 3] = rgba[p * 4]; rgb[p * 3 + 1] = rgba[p * 4 + 1]; rgb[p * 3 + 2] = rgba[p * 4 + 2];
  }
  return { rgb, w, h };
}

/** Label map `h * w` of an RGB image: Resize → Normalize → NCHW → model → logits back to `h x w` → argmax. */
async function segment(m, rgb, w, h) {
  const [nw, nh] = m.keepRatio ? rescaleSize(w, h, m.scale) : m.scale;
  const resized = nw === w && nh === h ? rgb : resizeImageBilinear(rgb, w, h, nw, nh);
  const input = new ort.Tensor('float32', normalizeToNchw(resized, nw, nh, m.norm), [1, 3, nh, nw]);
  const out = await m.session.run({ [m.session.inputNames[0]]: input });
  const logits = out[m.session.outputNames[0]];
  const [, k, lh, lw] = logits.dims;
  // An export with --no-resize gives stride-4 logits: first to the input size (mmseg encode_decode).
  const atInput = lh === nh && lw === nw ? logits.data : resizeLogitsBilinear(logits.data, k, lh, lw, nh, nw);
  const labels = resizeArgmax(atInput, k, nh, nw, h, w);
  input.dispose?.();
  logits.dispose?.();
  return { labels, k };
}

/** The image with the prediction blended 50% over it (as tools/test.ts --show-dir), and the legend. */
function render(m, rgb, w, h, labels, k) {
  const palette = m.palette && m.palette.length >= k ? m.palette : defaultPalette(k);
  const canvas = $('canvas');
  canvas.width = w; canvas.height = h;
  canvas.style.width = `${w * Math.max(1, Math.floor(384 / Math.max(w, h)))}px`; // small images: zoom in
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w, h);
  const counts = new Array(k).fill(0);
  for (let p = 0; p < w * h; p++) {
    const c = labels[p], col = palette[c] ?? [0, 0, 0];
    counts[c]++;
    for (let j = 0; j < 3; j++) img.data[p * 4 + j] = Math.round(0.5 * rgb[p * 3 + j] + 0.5 * col[j]);
    img.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  $('legend').replaceChildren(...palette.slice(0, k).map((col, c) => {
    const li = document.createElement('li');
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = `rgb(${col.join(',')})`;
    li.append(sw, `${m.classes?.[c] ?? `class ${c}`} — ${((100 * counts[c]) / (w * h)).toFixed(1)}%`);
    return li;
  }));
}

function base64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** Segments the image `blob` (a Blob or a promise of one) and publishes the result. */
async function run(modelReady, blob, name) {
  delete document.body.dataset.done;
  delete document.body.dataset.error;
  $('error').textContent = '';
  try {
    const m = await modelReady;
    setStatus(`segmenting ${name}…`);
    const t0 = performance.now();
    const { rgb, w, h } = await decodeRgb(await blob);
    const { labels, k } = await segment(m, rgb, w, h);
    const ms = performance.now() - t0;
    render(m, rgb, w, h, labels, k);
    window.c2fResult = { width: w, height: h, numClasses: k, labels: base64(Uint8Array.from(labels)), ms };
    setStatus(`${name}: ${w}x${h}, ${ms.toFixed(0)} ms`);
    document.body.dataset.done = '1';
  } catch (e) {
    fail(e);
  }
}

$('model-url').textContent = modelUrl;
const modelReady = loadModel();
modelReady.then(() => { setStatus('model loaded: pick an image'); $('file').disabled = false; }, fail);
$('file').addEventListener('change', (ev) => {
  const f = ev.target.files?.[0];
  if (f) run(modelReady, f, f.name);
});
const imageParam = params.get('image');
if (imageParam) {
  const url = new URL(imageParam, location.href).href;
  run(modelReady, fetch(url).then((r) => {
    if (!r.ok) throw new Error(`cannot load the image ${url}: HTTP ${r.status}`);
    return r.blob();
  }), imageParam);
}
