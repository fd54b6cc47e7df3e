/**
 * Decoding of label-map PNGs: the stored SAMPLE VALUES are class ids.
 *
 * Decoded here (zlib only) rather than with sharp, because sharp/libvips cannot give label values for three common
 * kinds of label PNG: palette PNGs come out as their RGB colours (the indices, e.g. Pascal VOC's
 * class ids, are lost — two indices with the same colour even become indistinguishable), 1/2/4-bit
 * grayscale is scaled to 0..255 (a 1-bit mask's class 1 would read as 255 = ignored), and 16-bit
 * maps come out 8-bit unless asked for grey16 explicitly. What is read:
 *  - grayscale (1/2/4/8/16-bit): the sample values, unscaled; gray+alpha: the gray value;
 *  - palette: the palette index (like Pillow's 'P' mode, which MMSeg reads);
 *  - RGB/RGBA: accepted only when R = G = B at every pixel (gray saved as colour), read as that
 *    value; a real colour image (e.g. a colour-coded mask) is refused, since no channel of it is a
 *    class id. Alpha is ignored. Interlaced (Adam7) PNGs are fine.
 * Note that MMSeg 1.x casts ground truth to uint8, so 16-bit ids ≥ 256 wrap there; here they don't.
 */
import { readFile } from 'node:fs/promises';
import zlib from 'node:zlib';

/** A decoded label map: `data[y * width + x]` is the class id. */
export interface LabelMap {
  width: number;
  height: number;
  data: Uint8Array | Uint16Array;
}

const PNG_SIGNATURE = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const BIT_DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
// Adam7 passes: x0, y0, dx, dy.
const ADAM7 = [
  [0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2],
] as const;
const crc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32; // Node ≥ 20.15
/** The most bytes decoding may allocate for the inflated rows or the label map (2 GiB). */
const MAX_DECODE_BYTES = 2 ** 31;
/** Inflated data beyond the image's rows that is tolerated (and ignored): some writers leave a little. */
const EXTRA_DATA_SLACK = 1 << 20;

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * Decodes a PNG into its per-pixel label values (see the file comment). Throws a bare reason (the
 * file-taking {@link readLabelPng} adds the name), also for images that would need more than
 * 2 GiB to decode and for image data that inflates beyond the image's size.
 */
export function decodeLabelPng(buf: Buffer): LabelMap {
  if (buf.length < 8 || !buf.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error('not a PNG file');
  let pos = 8;
  let width = 0, height = 0, bitDepth = 0, colorType = -1, interlace = 0;
  const idat: Buffer[] = [];
  let sawEnd = false;
  while (pos < buf.length) {
    if (pos + 12 > buf.length) throw new Error('truncated chunk header');
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    if (pos + 12 + len > buf.length) throw new Error(`truncated ${type} chunk`);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (crc32 && (crc32(buf.subarray(pos + 4, pos + 8 + len)) >>> 0) !== buf.readUInt32BE(pos + 8 + len)) {
      throw new Error(`CRC mismatch in ${type} chunk (corrupt file)`);
    }
    if (pos === 8 && type !== 'IHDR') throw new Error('first chunk is not IHDR');
    if (type === 'IHDR') {
      if (len !== 13) throw new Error('bad IHDR chunk');
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      bitDepth = data[8]!;
      colorType = data[9]!;
      interlace = data[12]!;
      if (data[10] !== 0 || data[11] !== 0 || interlace > 1) throw new Error('unknown compression, filter or interlace method');
      if (!BIT_DEPTHS[colorType]?.includes(bitDepth)) throw new Error(`invalid colour type ${colorType} with bit depth ${bitDepth}`);
      if (width === 0 || height === 0) throw new Error(`empty image (${width}x${height})`);
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      sawEnd = true;
      break;
    }
    pos += 12 + len;
  }
  if (colorType < 0) throw new Error('no IHDR chunk');
  if (idat.length === 0) throw new Error('no image data (IDAT)');
  if (!sawEnd) throw new Error('truncated file (no IEND chunk)');

  const channels = CHANNELS[colorType]!;
  const bitsPerPixel = channels * bitDepth;
  const passes = interlace === 1 ? ADAM7 : ([[0, 0, 1, 1]] as const);
  // Sizes first, so that a corrupt header is refused before anything that large is allocated.
  let rawSize = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.ceil((width - x0) / dx);
    const ph = Math.ceil((height - y0) / dy);
    if (pw > 0 && ph > 0) rawSize += ph * (1 + Math.ceil((pw * bitsPerPixel) / 8));
  }
  const outSize = width * height * (bitDepth === 16 ? 2 : 1);
  if (Math.max(rawSize, outSize) > MAX_DECODE_BYTES) {
    throw new Error(`image of ${width}x${height} pixels is too large to decode (${Math.max(rawSize, outSize)} bytes, more than ${MAX_DECODE_BYTES}); is the IHDR corrupt?`);
  }
  let raw: Buffer;
  try {
    raw = zlib.inflateSync(Buffer.concat(idat), { maxOutputLength: rawSize + EXTRA_DATA_SLACK });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new Error(`corrupt image data: it inflates to over ${EXTRA_DATA_SLACK} bytes more than the ${rawSize} of a ${width}x${height} image`);
    }
    throw new Error(`corrupt image data: ${(err as Error).message}`);
  }
  if (raw.length < rawSize) throw new Error('truncated image data');

  const bpp = Math.max(1, bitsPerPixel >> 3); // filter byte distance
  const out = bitDepth === 16 ? new Uint16Array(width * height) : new Uint8Array(width * height);
  const mask = (1 << bitDepth) - 1;
  /** Sample number `s` of an unfiltered row. */
  const sample = (row: Uint8Array, s: number): number => {
    if (bitDepth === 8) return row[s]!;
    if (bitDepth === 16) return (row[2 * s]! << 8) | row[2 * s + 1]!;
    const bit = s * bitDepth;
    return (row[bit >> 3]! >> (8 - bitDepth - (bit & 7))) & mask;
  };
  const rgb = colorType === 2 || colorType === 6;
  let off = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.ceil((width - x0) / dx);
    const ph = Math.ceil((height - y0) / dy);
    if (pw <= 0 || ph <= 0) continue; // empty pass: not even filter bytes
    const rowBytes = Math.ceil((pw * bitsPerPixel) / 8);
    let prev = new Uint8Array(rowBytes);
    let cur = new Uint8Array(rowBytes);
    for (let r = 0; r < ph; r++) {
      if (off + 1 + rowBytes > raw.length) throw new Error('truncated image data');
      const filter = raw[off]!;
      const src = raw.subarray(off + 1, off + 1 + rowBytes);
      off += 1 + rowBytes;
      for (let i = 0; i < rowBytes; i++) {
        const x = src[i]!;
        const a = i >= bpp ? cur[i - bpp]! : 0;
        const b = prev[i]!;
        const c = i >= bpp ? prev[i - bpp]! : 0;
        let v: number;
        switch (filter) {
          case 0: v = x; break;
          case 1: v = x + a; break;
          case 2: v = x + b; break;
          case 3: v = x + ((a + b) >> 1); break;
          case 4: v = x + paeth(a, b, c); break;
          default: throw new Error(`unknown row filter ${filter}`);
        }
        cur[i] = v & 0xff;
      }
      const y = y0 + r * dy;
      for (let px = 0; px < pw; px++) {
        const s = px * channels;
        const v0 = sample(cur, s);
        if (rgb) {
          const g = sample(cur, s + 1), b = sample(cur, s + 2);
          if (g !== v0 || b !== v0) {
            throw new Error(
              `it is a colour (RGB) image, not a label map: pixel (${x0 + px}, ${y}) is (${v0}, ${g}, ${b}); ` +
                'label maps must be grayscale or palette PNGs (RGB only when R = G = B)',
            );
          }
        }
        out[y * width + x0 + px * dx] = v0;
      }
      [prev, cur] = [cur, prev];
    }
  }
  return { width, height, data: out };
}

/** Reads and decodes a label PNG; errors name the file. */
export async function readLabelPng(file: string): Promise<LabelMap> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return decodeLabelPng(buf);
  } catch (err) {
    throw new Error(`cannot decode ${file}: ${(err as Error).message}`);
  }
}

