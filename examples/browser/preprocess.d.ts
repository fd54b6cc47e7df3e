/** Types of preprocess.js for the TypeScript tests (the page itself needs no build step). */
export function rescaleSize(w: number, h: number, scale: [number, number]): [number, number];
export function resizeImageBilinear(data: Uint8Array | Uint8ClampedArray, inW: number, inH: number, outW: number, outH: number): Uint8Array;
export function normalizeToNchw(data: Uint8Array, w: number, h: number, norm: { mean: number[]; std: number[] }): Float32Array;
export function resizeLogitsBilinear(logits: Float32Array, k: number, inH: number, inW: number, outH: number, outW: number): Float32Array;
export function resizeArgmax(logits: Float32Array, k: number, inH: number, inW: number, outH: number, outW: number): Uint8Array | Uint16Array;
