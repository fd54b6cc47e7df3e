import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as w from '@tensorflow/tfjs-backend-wasm';

// Emscripten's pthread workers get their scripts as Blob URLs, which Node's Worker cannot load.
// Capture the Blob texts and hand out files instead.
const dir = mkdtempSync(path.join(os.tmpdir(), 'tfjs-wasm-'));
const texts = new WeakMap();
let mainFile = null;
// The bundle's factory refers to the bundler's names for its requires.
const PRELUDE = "var require$$0 = require('fs'), require$$1 = require('path'), require$$2 = require('worker_threads'), require$$3 = require('perf_hooks'), require$$4 = require('os'), commonjsGlobal = globalThis;\n";
const RealBlob = globalThis.Blob;
globalThis.Blob = class extends RealBlob {
  constructor(parts, opts) {
    super(parts, opts);
    if (!parts.every((p) => typeof p === 'string')) return;
    const text = parts.join('');
    texts.set(this, text);
    if (text.startsWith('var WasmBackendModuleThreadedSimd')) { mainFile = path.join(dir, 'main.js'); writeFileSync(mainFile, PRELUDE + text); }
  }
};
let n = 0;
const realCreate = URL.createObjectURL;
URL.createObjectURL = (blob) => {
  const text = texts.get(blob);
  if (text === undefined) return realCreate(blob);
  const file = path.join(dir, `script${n++}.js`);
  {
    // Worker script: make its own createObjectURL (for the main script Blob it receives) return the file.
    writeFileSync(file, `URL.createObjectURL = () => ${JSON.stringify(mainFile)}; URL.revokeObjectURL = () => {};\n` + text);
    return file;
  }
  return file;
};
tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
// tfjs caps its pool at logical cores / 2 (it assumes hyper-threading).
const osm = (await import('node:os')).default;
const realCpus = osm.cpus;
if (process.env.NT !== '1') osm.cpus = () => [...realCpus(), ...realCpus()];
w.setThreadsCount(Number(process.env.NT ?? 2));
try {
  await tf.setBackend('wasm');
  await new Promise((r) => setTimeout(r, 500));
  const be = tf.backend();
  const PT = be.wasm.PThread;
  console.log('running', PT.runningWorkers.length, 'unused', PT.unusedWorkers.length);
  for (const wk of [...PT.runningWorkers, ...PT.unusedWorkers]) wk.unref();
  
  console.log('backend', tf.getBackend(), 'threads', be.wasm.tfjs.getThreadsCount(), mainFile);
} catch (e) { console.log('ERR', e.message ?? e); }
const a = tf.randomNormal([1024, 1024]), b = tf.randomNormal([1024, 1024]);
tf.matMul(a, b).dataSync();
let t = performance.now(); for (let i = 0; i < 10; i++) tf.matMul(a, b).dataSync(); console.log('matmul ms', (performance.now() - t) / 10);
const x = tf.randomNormal([4, 32, 32, 128]), f = tf.randomNormal([3, 3, 128, 32]);
tf.conv2d(x, f, 1, 'same').dataSync();
t = performance.now(); for (let i = 0; i < 20; i++) tf.conv2d(x, f, 1, 'same').dataSync(); console.log('conv ms', (performance.now() - t) / 20);
console.log('tasks', (await import('node:fs')).readdirSync('/proc/self/task').length); const u0 = process.cpuUsage(); const t0 = performance.now(); for (let i = 0; i < 20; i++) tf.matMul(a, b).dataSync(); const u = process.cpuUsage(u0); console.log('cpu/wall', ((u.user + u.system) / 1000 / (performance.now() - t0)).toFixed(2)); 
