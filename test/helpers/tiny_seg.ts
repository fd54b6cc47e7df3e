/** The tiny shapes-segmentation data blocks the CLI tests train the shapes UperNet on (64x64 crops). */
import path from 'node:path';

export const NORMALIZE = { type: 'Normalize', mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] };

/** `data.train` / `data.val` over the ADE20K-layout shapes set in `dataDir/ade` (made by generateShapes). */
export function tinySegData(dataDir: string): { train: Record<string, unknown>; val: Record<string, unknown> } {
  const d = path.join(dataDir, 'ade');
  return {
    train: {
      img_dir: path.join(d, 'images/training'), ann_dir: path.join(d, 'annotations/training'),
      pipeline: [{ type: 'LoadImageFromFile' }, { type: 'LoadAnnotations' }, { type: 'Resize', scale: [96, 64], ratio_range: [0.75, 1.25], keep_ratio: true },
        { type: 'RandomCrop', crop_size: [64, 64], cat_max_ratio: 0.75 }, { type: 'RandomFlip', prob: 0.5 }, NORMALIZE, { type: 'Pad', size: [64, 64] }],
    },
    val: { img_dir: path.join(d, 'images/validation'), ann_dir: path.join(d, 'annotations/validation'), pipeline: [{ type: 'LoadImageFromFile' }, { type: 'LoadAnnotations' }, NORMALIZE] },
  };
}
