/**
 * Fuzz targets of the binary and config readers: label PNGs (`readLabelPng`), safetensors
 * (`readSafetensors`) and YAML configs (`loadConfig` + `validateExperimentConfig`). PNG and
 * safetensors mutations re-seal what the format checks first (chunk CRCs, the header length), so
 * that most cases reach the deeper parsing; see test/fuzz_readers.test.ts.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import YAML from 'yaml';
import { configToYaml, loadConfig, validateExperimentConfig } from '../../src/config/index.ts';
import { readLabelPng } from '../../src/io/label_png.ts';
import { readSafetensors } from '../../src/io/safetensors.ts';
import { Rng, concat, mutateBytes, mutateTree, slots, toJsonText, NASTY_NUMBERS } from './fuzz_mutate.ts';
import type { FuzzTarget } from './fuzz_targets_coco.ts';

const crc32 = (zlib as unknown as { crc32: (b: Uint8Array) => number }).crc32;

interface Chunk {
  type: string;
  data: Uint8Array;
}

function chunkBytes(c: Chunk, crcFix = true): Uint8Array {
  const out = Buffer.alloc(12 + c.data.length);
  out.writeUInt32BE(c.data.length, 0);
  out.write(c.type, 4, 'latin1');
  out.set(c.data, 8);
  out.writeUInt32BE(crcFix ? crc32(out.subarray(4, 8 + c.data.length)) >>> 0 : 0, 8 + c.data.length);
  return out;
}

const SIGNATURE = Uint8Array.from([137, 80, 78, 71, 13, 10, 26, 10]);

function ihdr(w: number, h: number, depth: number, colour: number, interlace: number): Uint8Array {
  const b = Buffer.alloc(13);
  b.writeUInt32BE(w, 0);
  b.writeUInt32BE(h, 4);
  b[8] = depth;
  b[9] = colour;
  b[12] = interlace;
  return b;
}

/** Unfiltered scanlines (filter byte 0) of a non-interlaced image, `rowBytes` each, of arbitrary content. */
function rawRows(h: number, rowBytes: number, value: (y: number, i: number) => number): Uint8Array {
  const out = new Uint8Array(h * (rowBytes + 1));
  for (let y = 0; y < h; y++) {
    out[y * (rowBytes + 1)] = y % 5; // every filter type
    for (let i = 0; i < rowBytes; i++) out[y * (rowBytes + 1) + 1 + i] = value(y, i);
  }
  return out;
}

/** Valid small label PNGs of several kinds (as chunk lists). */
function pngSeeds(): Chunk[][] {
  const png = (hdr: Uint8Array, raw: Uint8Array, extra: Chunk[] = []): Chunk[] => [
    { type: 'IHDR', data: hdr }, ...extra, { type: 'IDAT', data: zlib.deflateSync(raw) }, { type: 'IEND', data: new Uint8Array(0) },
  ];
  const plte = { type: 'PLTE', data: Uint8Array.from({ length: 12 }, (_, i) => i * 20) };
  return [
    png(ihdr(13, 7, 8, 0, 0), rawRows(7, 13, (y, i) => (y * 3 + i) % 6)),
    png(ihdr(9, 5, 8, 3, 0), rawRows(5, 9, (y, i) => (y + i) % 4), [plte]),
    png(ihdr(17, 4, 1, 0, 0), rawRows(4, 3, (y, i) => (y * 37 + i * 11) & 0xff)),
    png(ihdr(6, 6, 16, 0, 0), rawRows(6, 12, (y, i) => (i % 2 ? y : 0))),
    png(ihdr(5, 3, 8, 2, 0), rawRows(3, 15, (y, i) => y + Math.floor(i / 3))),
    png(ihdr(8, 8, 8, 0, 1), new Uint8Array(8 * 8 + 15).fill(0)), // Adam7 gray: 15 pass rows, all zero
  ];
}

const U32S = [0, 1, 2, 13, 0x7fffffff, 0x80000000, 0xffffffff, 65535, 46341, 100000, 0x10000];

/** A structure-aware PNG mutation (CRC re-sealed unless the mutation is of the CRC or length). */
function mutatePng(rng: Rng, seed: Chunk[], bomb: Uint8Array): { data: Uint8Array; what: string[] } {
  let chunks: Chunk[] = seed.map((c) => ({ type: c.type, data: Uint8Array.from(c.data) }));
  const what: string[] = [];
  let lengthHack: { index: number; value: number } | null = null;
  let badCrc = -1;
  for (let k = 1 + rng.int(2); k > 0; k--) {
    const r = rng.int(9);
    const hdr = Buffer.from(chunks.find((c) => c.type === 'IHDR')?.data ?? new Uint8Array(13));
    if (r <= 1 && hdr.length >= 13) {
      const field = rng.int(5);
      if (field === 0) hdr.writeUInt32BE(rng.pick(U32S), 0);
      else if (field === 1) hdr.writeUInt32BE(rng.pick(U32S), 4);
      else if (field === 2) hdr.writeUInt32BE(rng.pick(U32S), 0), hdr.writeUInt32BE(rng.pick(U32S), 4);
      else hdr[8 + rng.int(5)] = rng.pick([0, 1, 2, 3, 4, 6, 7, 8, 16, 32, 255]);
      chunks.forEach((c) => { if (c.type === 'IHDR') c.data = hdr; });
      what.push('ihdr-field');
    } else if (r === 2) {
      lengthHack = { index: rng.int(chunks.length), value: rng.pick(U32S) };
      what.push('chunk-length');
    } else if (r === 3) {
      badCrc = rng.int(chunks.length);
      what.push('chunk-crc');
    } else if (r === 4) {
      const idat = chunks.find((c) => c.type === 'IDAT');
      let raw: Uint8Array | null = null;
      try {
        raw = idat ? zlib.inflateSync(idat.data) : null; // fails after an earlier mutation of the IDAT
      } catch {}
      if (idat && raw) idat.data = zlib.deflateSync(mutateBytes(rng, raw).bytes);
      what.push('idat-raw');
    } else if (r === 5) {
      const idat = chunks.find((c) => c.type === 'IDAT');
      if (idat) idat.data = mutateBytes(rng, idat.data).bytes;
      what.push('idat-deflate');
    } else if (r === 6) {
      chunks = chunks.map((c) => (c.type === 'IDAT' ? { type: 'IDAT', data: bomb } : c));
      what.push('deflate-bomb');
    } else if (r === 7) {
      const i = rng.int(chunks.length);
      const op = rng.int(4);
      if (op === 0) chunks.splice(i, 1);
      else if (op === 1) chunks.splice(i, 0, structuredClone(chunks[rng.int(chunks.length)]));
      else if (op === 2) chunks.splice(i, 0, { type: rng.pick(['tEXt', 'abCD', 'IHDR', 'IEND', 'PLTE', 'IDAT']), data: Uint8Array.from({ length: rng.int(20) }, () => rng.int(256)) });
      else chunks.reverse();
      what.push('chunk-list');
    } else {
      const idat = chunks.find((c) => c.type === 'IDAT');
      if (idat) {
        const at = rng.int(idat.data.length);
        chunks.splice(chunks.indexOf(idat), 1, { type: 'IDAT', data: idat.data.slice(0, at) }, { type: 'IDAT', data: idat.data.slice(at) });
      }
      what.push('idat-split');
    }
  }
  const parts = chunks.map((c, i) => {
    const b = Buffer.from(chunkBytes(c, i !== badCrc));
    if (lengthHack?.index === i) b.writeUInt32BE(lengthHack.value, 0);
    return b;
  });
  let data = concat(SIGNATURE, ...parts);
  if (rng.chance(0.2)) {
    const m = mutateBytes(rng, data);
    data = m.bytes;
    what.push(m.name);
  }
  return { data, what };
}

interface StEntry {
  dtype: unknown;
  shape: unknown;
  data_offsets: unknown;
}

function safetensorsSeed(): { header: Record<string, unknown>; data: Uint8Array } {
  const tensors: [string, string, number[], number][] = [
    ['w', 'F32', [2, 3], 4], ['b', 'F16', [3], 2], ['g', 'BF16', [2], 2], ['n', 'I64', [2], 8], ['m', 'U8', [0], 1], ['f', 'BOOL', [3], 1], ['d', 'F64', [1], 8], ['i', 'I8', [1, 1, 2], 1],
  ];
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', note: 'seed' } };
  let off = 0;
  for (const [name, dtype, shape, size] of tensors) {
    const n = shape.reduce((a, b) => a * b, 1) * size;
    header[name] = { dtype, shape, data_offsets: [off, off + n] } satisfies StEntry;
    off += n;
  }
  return { header, data: Uint8Array.from({ length: off }, (_, i) => (i * 7) & 0x3f) };
}

const BIG64 = [0n, 1n, 2n, 7n, 2n ** 31n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, 100_000_000n, 100_000_001n];

function mutateSafetensors(rng: Rng, seed: { header: Record<string, unknown>; data: Uint8Array }): { data: Uint8Array; what: string[] } {
  const header = structuredClone(seed.header);
  const what: string[] = [];
  const entries = slots(header).filter((s) => s.key === 'dtype' || s.key === 'shape' || s.key === 'data_offsets');
  for (let k = 1 + rng.int(2); k > 0; k--) {
    if (rng.chance(0.6) && entries.length > 0) {
      const s = rng.pick(entries);
      const put = (v: unknown): void => {
        (s.parent as Record<string, unknown>)[s.key as string] = v;
      };
      if (s.key === 'dtype') put(rng.pick(['F32', 'F16', 'BF16', 'F64', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'U16', 'U64', 'F8_E4M3', 'C64', '', 'f32', 5, null, 'toString', '__proto__']));
      else if (s.key === 'shape') put(rng.pick([[], [0], [-1], [1.5], [2 ** 53], [1e9, 1e9], [2 ** 31, 2 ** 31, 2 ** 31], ['2'], [null], 3, [2, 3], [6]]));
      else {
        const o = [...(Array.isArray(s.value) ? s.value : [0, 0])];
        o[rng.int(2)] = rng.pick(NASTY_NUMBERS);
        put(rng.chance(0.8) ? o : rng.pick([[0], [0, 1, 2], [10, 2], 'x', null]));
      }
      what.push(`st-${s.key}`);
    } else what.push(mutateTree(rng, header));
  }
  const json = Buffer.from(toJsonText(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  if (rng.chance(0.2)) {
    len.writeBigUInt64LE(rng.chance(0.5) ? rng.pick(BIG64) : BigInt(Math.max(0, json.length + rng.pick([-1, 1, -8, 8]))));
    what.push('st-length');
  }
  let data = concat(len, json, seed.data);
  if (rng.chance(0.25)) {
    const m = mutateBytes(rng, data);
    data = m.bytes;
    what.push(m.name);
  }
  return { data, what };
}

/** The YAML config of the shapes UperNet recipe with its bases merged, as one self-contained file. */
function configSeed(): string {
  const file = path.resolve(import.meta.dirname, '../../configs/upernet_c2f_shapes.yaml');
  return configToYaml(loadConfig(file));
}

const YAML_SPECIALS: readonly ((dir: string) => string)[] = [
  () => '_base_: does_not_exist.yaml\n',
  (dir) => `_base_: ${JSON.stringify(path.join(dir, 'base.yaml'))}\n`,
  () => '_base_: [1, 2]\n',
  () => '_base_: .\n', // a directory
  () => '_base_: [base.yaml, base.yaml]\n',
  () => 'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n',
  () => `deep: ${'['.repeat(20000)}${']'.repeat(20000)}\n`,
  () => `deep: ${'{a: '.repeat(3000)}1${'}'.repeat(3000)}\n`,
  () => 'schedule:\n\tmax_iters: 3\n',
  () => 'x: !!js/function "() => 1"\ny: !!binary aGVsbG8=\n',
  () => 'schedule: {max_iters: 1e999, warmup_iters: .nan}\n',
  () => `${'k'.repeat(100000)}: 1\n`,
  () => 'train: &t {eval_interval: 1}\nval: {<<: *t}\n',
  () => 'a: 1\na: 2\n',
  () => '? [complex, key]\n: 1\n',
  () => '%YAML 9.9\n---\na: 1\n...\n---\nb: 2\n',
];

function mutateYaml(rng: Rng, seedText: string, dir: string): { data: Uint8Array | string; what: string[] } {
  const what: string[] = [];
  let text = seedText;
  if (rng.chance(0.6)) {
    const tree = YAML.parse(seedText) as unknown;
    for (let k = 1 + rng.int(3); k > 0; k--) what.push(mutateTree(rng, tree));
    // Raw JSON tokens (1e400, deep brackets, NaN) are valid flow YAML or plain scalars: write them bare.
    text = YAML.stringify(tree, { lineWidth: 0 }).replace(/"\\x01raw:(.*?)\\x01"/g, (_m, t: string) => t);
  }
  if (rng.chance(0.25)) {
    text += rng.pick(YAML_SPECIALS)(dir);
    what.push('yaml-special');
  }
  if (!rng.chance(0.3)) return { data: text, what };
  const m = mutateBytes(rng, Buffer.from(text));
  what.push(m.name);
  return { data: m.bytes, what };
}

/** Label PNGs: several valid kinds, mutated in their chunks, header fields and image data. */
export function pngTarget(): FuzzTarget {
  const seeds = pngSeeds();
  const bomb = zlib.deflateSync(new Uint8Array(64 << 20));
  const files = seeds.map((chunks) => concat(SIGNATURE, ...chunks.map((c) => chunkBytes(c))));
  return { name: 'label-png', ext: 'png', seeds: files, make: (rng) => mutatePng(rng, rng.pick(seeds), bomb), read: readLabelPng };
}

/** safetensors files: header entries, the length field and the bytes mutated. */
export function safetensorsTarget(): FuzzTarget {
  const st = safetensorsSeed();
  const len = Buffer.alloc(8);
  const json = Buffer.from(JSON.stringify(st.header));
  len.writeBigUInt64LE(BigInt(json.length));
  return { name: 'safetensors', ext: 'safetensors', seeds: [concat(len, json, st.data)], make: (rng) => mutateSafetensors(rng, st), read: readSafetensors };
}

/** YAML configs (the shapes UperNet recipe, merged), loaded and validated; `dir` gets a base file they may name. */
export function yamlTarget(dir: string): FuzzTarget {
  const seed = configSeed();
  writeFileSync(path.join(dir, 'base.yaml'), 'train: {eval_interval: 7}\n');
  return { name: 'yaml-config', ext: 'yaml', seeds: [seed], make: (rng) => mutateYaml(rng, seed, dir), read: async (f) => validateExperimentConfig(loadConfig(f), f) };
}
