/**
 * ImageNet classification input pipeline (timm's default evaluation transform), on `sharp`.
 * No tfjs import: the result is a plain NHWC `Float32Array` that callers turn into a tensor.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';

/** Per-channel RGB mean of ImageNet, in [0, 1] units; shape `[3]`. */
export const IMAGENET_MEAN: readonly [number, number, number] = Object.freeze([0.485, 0.456, 0.406] as const);

/** Per-channel RGB standard deviation of ImageNet, in [0, 1] units; shape `[3]`. */
export const IMAGENET_STD: readonly [number, number, number] = Object.freeze([0.229, 0.224, 0.225] as const);

/** Options of {@link loadClassificationInput}. */
export interface ClassificationInputOptions {
  /** Side of the square crop fed to the network (default 224). */
  size?: number;
  /**
   * Crop fraction (default 0.875): the shorter side is first resized to `floor(size / cropPct)`.
   * Values above 1 give a resized image smaller than the crop; it is zero-padded (black) like
   * torchvision's `CenterCrop`.
   */
  cropPct?: number;
}

/** A preprocessed image batch of one, NHWC. */
export interface ClassificationInput {
  /** Normalised RGB values, `(x / 255 - mean) / std`, row-major NHWC, length `size * size * 3`. */
  data: Float32Array;
  /** `[1, size, size, 3]`. */
  shape: [1, number, number, 3];
}

/** Python's `round()` (half to even), as used by torchvision's `center_crop` offsets. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Loads an image file and applies timm's default eval transform for ImageNet classifiers:
 *
 * 1. decode and convert to 8-bit RGB (alpha dropped without compositing, grayscale expanded),
 *    like PIL's `convert('RGB')`;
 * 2. resize so that the shorter side is `floor(size / cropPct)` (224 / 0.875 → 256), keeping the
 *    aspect ratio (longer side `floor(short * long / shortIn)`, as torchvision's `Resize(int)`),
 *    bicubic (`sharp` kernel `'cubic'`);
 * 3. center-crop `size × size` (torchvision's `CenterCrop` offsets, zero padding if smaller);
 * 4. scale to [0, 1] and normalise by {@link IMAGENET_MEAN} / {@link IMAGENET_STD}.
 *
 * EXIF orientation is not applied (PIL does not apply it either).
 *
 * @param path image file (any format `sharp` decodes: JPEG, PNG, WebP, GIF, TIFF, ...).
 * @param opts `size` (default 224) and `cropPct` (default 0.875).
 * @returns `data` as NHWC float32 with `shape` `[1, size, size, 3]`.
 * @throws Error `cannot read image <path>: <cause>` when the file is missing or cannot be decoded
 *   (the original error is kept as `cause`); RangeError on invalid options.
 */
export async function loadClassificationInput(
  path: string,
  opts: ClassificationInputOptions = {},
): Promise<ClassificationInput> {
  const size = opts.size ?? 224;
  const cropPct = opts.cropPct ?? 0.875;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}`);
  if (!Number.isFinite(cropPct) || cropPct <= 0) throw new RangeError(`cropPct must be a positive number, got ${cropPct}`);
  const scaleSize = Math.floor(size / cropPct);
  if (scaleSize < 1) throw new RangeError(`floor(size / cropPct) must be >= 1, got ${scaleSize}`);

  // Decode to RGB first (as PIL's convert('RGB') does before resizing), in its own pass, so that
  // resizing never sees an alpha channel (sharp would premultiply it) nor a shrink-on-load JPEG.
  let rgb: Buffer;
  let inW: number;
  let inH: number;
  try {
    const file = await readFile(path);
    const { data, info } = await sharp(file)
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new Error(`decoded to ${info.channels} channel(s) of ${data.length} bytes, expected 3-channel 8-bit RGB`);
    }
    rgb = data;
    inW = info.width;
    inH = info.height;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`cannot read image ${path}: ${msg}`, { cause: err });
  }

  // torchvision Resize(int): the shorter side becomes scaleSize, the longer one int(scale * long / short).
  let outW: number;
  let outH: number;
  if (inW <= inH) {
    outW = scaleSize;
    outH = Math.floor((scaleSize * inH) / inW);
  } else {
    outH = scaleSize;
    outW = Math.floor((scaleSize * inW) / inH);
  }

  let resized: Buffer;
  if (outW === inW && outH === inH) {
    resized = rgb;
  } else {
    try {
      resized = await sharp(rgb, { raw: { width: inW, height: inH, channels: 3 } })
        .resize({ width: outW, height: outH, fit: 'fill', kernel: 'cubic' })
        .raw({ depth: 'uchar' })
        .toBuffer();
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new Error(`cannot read image ${path}: resize ${inW}x${inH} -> ${outW}x${outH} failed: ${msg}`, { cause: err });
    }
    if (resized.length !== outW * outH * 3) {
      throw new Error(`cannot read image ${path}: resize produced ${resized.length} bytes, expected ${outW * outH * 3}`);
    }
  }

  // torchvision CenterCrop: offsets int(round((dim - crop) / 2)); areas outside the image are 0 (black).
  const top = roundHalfEven((outH - size) / 2);
  const left = roundHalfEven((outW - size) / 2);
  const data = new Float32Array(size * size * 3);
  const m0 = IMAGENET_MEAN[0], m1 = IMAGENET_MEAN[1], m2 = IMAGENET_MEAN[2];
  const s0 = IMAGENET_STD[0], s1 = IMAGENET_STD[1], s2 = IMAGENET_STD[2];
  for (let y = 0; y < size; y++) {
    const sy = y + top;
    const rowIn = sy >= 0 && sy < outH;
    for (let x = 0; x < size; x++) {
      const sx = x + left;
      let r = 0, g = 0, b = 0;
      if (rowIn && sx >= 0 && sx < outW) {
        const i = (sy * outW + sx) * 3;
        r = resized[i]!;
        g = resized[i + 1]!;
        b = resized[i + 2]!;
      }
      const o = (y * size + x) * 3;
      data[o] = (r / 255 - m0) / s0;
      data[o + 1] = (g / 255 - m1) / s1;
      data[o + 2] = (b / 255 - m2) / s2;
    }
  }
  return { data, shape: [1, size, size, 3] };
}
