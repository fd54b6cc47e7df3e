/**
 * `norm_cfg` blocks of the heads (segmentation decode heads, detection box heads): the schema and
 * its conversion to a ConvModule's norm.
 */
import { bool, int, obj, optional, refine, str, type Infer } from '../config/schema.ts';
import type { NormOptions } from '../nn/conv_module.ts';

/** `norm_cfg: {type: BN|SyncBN|GN, requires_grad?, num_groups?}` (SyncBN: BN, synced across processes under `--launcher mpi`). */
export const normCfgSchema = refine(
  obj({
    type: str({ enum: ['BN', 'SyncBN', 'GN'] }),
    requires_grad: optional(refine(bool(), (v) => (v ? undefined : 'only true is supported'))),
    num_groups: optional(int({ min: 1 })),
  }),
  (n) => (n.num_groups !== undefined && n.type !== 'GN' ? "num_groups is only for type 'GN'" : undefined),
);

/** The heads' norm from a validated `norm_cfg` (default BN). */
export function normOf(n: Infer<typeof normCfgSchema> | undefined): NormOptions {
  if (!n || n.type === 'BN') return { norm: 'BN' };
  if (n.type === 'SyncBN') return { norm: 'SyncBN' };
  return { norm: 'GN', ...(n.num_groups !== undefined ? { gnGroups: n.num_groups } : {}) };
}

