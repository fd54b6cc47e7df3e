/**
 * Child process of test/backend.test.ts: starts the wasm backend with `argv[2]` threads, runs a
 * conv + matmul, prints `{threads, pool, sum, first}` as JSON. No process.exit, so a pool worker left
 * referenced would keep it alive (the test's timeout catches that).
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend, wasmPoolThreads, wasmThreads } from '../../src/backend.ts';

await initBackend('wasm', { quiet: true, wasmThreads: Number(process.argv[2]) });
const x = tf.randomUniform([2, 24, 24, 32], -1, 1, 'float32', 7) as tf.Tensor4D;
const f = tf.randomUniform([3, 3, 32, 48], -1, 1, 'float32', 8) as tf.Tensor4D;
const y = tf.matMul(tf.reshape(tf.conv2d(x, f, 1, 'same'), [-1, 48]), tf.randomUniform([48, 64], -1, 1, 'float32', 9));
console.log(JSON.stringify({ threads: wasmThreads(), pool: wasmPoolThreads(), sum: tf.sum(tf.abs(y)).dataSync()[0], first: Array.from(y.dataSync().slice(0, 8)) }));
