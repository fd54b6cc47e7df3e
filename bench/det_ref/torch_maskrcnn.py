"""PyTorch reference Mask R-CNN (Conv2Former + FPN) for the learning-curve comparison.

README. This is a plain-PyTorch copy of what `tools/train.ts configs/maskrcnn_c2f_shapes.yaml`
trains: the same architecture (module names = the TS/MMDet state-dict keys, so the dump's
`init.safetensors` loads with strict=True), the same targets and losses (MMDetection 2.x semantics
as mirrored in src/heads, src/ops), AdamW 1e-3 / wd 0.05 (no decay on rank<=1 params, biases and
layer scales), linear warmup 200 iters (ratio 0.001) and steps x0.1 at 1125 and 1350 (MMCV
semantics), fed the identical batches that `bench/det_ref/dump_batches.ts` wrote:

    npx tsx bench/det_ref/dump_batches.ts --out /tmp/det_dump --iters 1500
    /usr/bin/python3 bench/det_ref/torch_maskrcnn.py --dump /tmp/det_dump --iters 1500 \
        --eval-at 750,1500 --log /tmp/torch_ref/log.jsonl --out-dir /tmp/torch_ref
    npx tsx tools/coco_eval.ts --gt data/shapes/coco/annotations/instances_val.json \
        --dt /tmp/torch_ref/results_1500.segm.json --iou-type segm

Every 25 iterations a JSON line (means over the last 25 iterations) goes to --log; at each
--eval-at iteration the val dump is run with MMDet test semantics and COCO results are written to
`--out-dir/results_<iter>.{bbox,segm}.json` (segm as uncompressed column-major RLE).
Known differences from the TS run: the random samplers use torch's RNG (not the TS globalRng),
the box coder works in float32 (TS: float64), and NMS ties may break differently.
Needs torch >= 1.13, torchvision >= 0.14, numpy; the backbone comes from
/work/shared/reference/conv2former_ref.py (or --c2f-ref).
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import batched_nms, roi_align

F32_EPS = 1.1920928955078125e-7
NUM_CLASSES = 5
STRIDES = [4, 8, 16, 32, 64]


# ----------------------------------------------------------------------------------------------
# safetensors (tiny reader)
# ----------------------------------------------------------------------------------------------
_ST_DTYPES = {'F32': np.float32, 'F64': np.float64, 'F16': np.float16, 'I64': np.int64, 'I32': np.int32,
              'I16': np.int16, 'I8': np.int8, 'U8': np.uint8, 'BOOL': np.bool_}


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        arr = np.frombuffer(data[a:b], dtype=np.dtype(_ST_DTYPES[v['dtype']]).newbyteorder('<')).reshape(v['shape'])
        out[k] = torch.from_numpy(arr.astype(arr.dtype.newbyteorder('='), copy=True))
    return out


# ----------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------
def build_backbone(ref_dir):
    sys.path.insert(0, ref_dir)
    import conv2former_ref as c2f  # noqa: E402

    class Conv2FormerDet(c2f.C2F):
        """Official Conv2Former without the classification head, LayerNorm `norm{i}` on each output."""

        def __init__(self, dims, depths, k):
            super().__init__(dims, depths, k)
            del self.head
            del self.pred
            for i in range(4):
                self.add_module(f'norm{i}', c2f.LN2d(dims[i], 1e-6))

        def forward(self, x):
            outs = []
            for i in range(4):
                x = self.stages[i](self.downsample_layers[i](x))
                outs.append(getattr(self, f'norm{i}')(x))
            return outs

    return Conv2FormerDet([16, 32, 64, 128], [1, 1, 2, 1], 7)


class ConvModule(nn.Module):
    def __init__(self, cin, cout, k, padding=0, act=False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=padding)
        self.act = act

    def forward(self, x):
        x = self.conv(x)
        return F.relu(x) if self.act else x


class FPN(nn.Module):
    def __init__(self, in_channels, out_channels=64, num_outs=5):
        super().__init__()
        self.lateral_convs = nn.ModuleList([ConvModule(c, out_channels, 1) for c in in_channels])
        self.fpn_convs = nn.ModuleList([ConvModule(out_channels, out_channels, 3, padding=1) for _ in in_channels])
        self.num_outs = num_outs

    def forward(self, inputs):
        lat = [conv(inputs[i]) for i, conv in enumerate(self.lateral_convs)]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[2:], mode='nearest')
        outs = [self.fpn_convs[i](lat[i]) for i in range(len(lat))]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs


class RPNHead(nn.Module):
    def __init__(self, cin=64, feat=64, a=3):
        super().__init__()
        self.rpn_conv = nn.Conv2d(cin, feat, 3, padding=1)
        self.rpn_cls = nn.Conv2d(feat, a, 1)
        self.rpn_reg = nn.Conv2d(feat, a * 4, 1)

    def forward(self, feats):
        cls, reg = [], []
        for f in feats:
            h = F.relu(self.rpn_conv(f))
            cls.append(self.rpn_cls(h))
            reg.append(self.rpn_reg(h))
        return cls, reg


class Shared2FCBBoxHead(nn.Module):
    def __init__(self, cin=64, s=7, fc=256, k=NUM_CLASSES):
        super().__init__()
        self.shared_fcs = nn.ModuleList([nn.Linear(cin * s * s, fc), nn.Linear(fc, fc)])
        self.fc_cls = nn.Linear(fc, k + 1)
        self.fc_reg = nn.Linear(fc, 4 * k)

    def forward(self, x):
        h = x.flatten(1)  # (C, 7, 7) order
        for fc in self.shared_fcs:
            h = F.relu(fc(h))
        return self.fc_cls(h), self.fc_reg(h)


class FCNMaskHead(nn.Module):
    def __init__(self, cin=64, c=64, num_convs=4, k=NUM_CLASSES):
        super().__init__()
        self.convs = nn.ModuleList([ConvModule(cin if i == 0 else c, c, 3, padding=1, act=True) for i in range(num_convs)])
        self.upsample = nn.ConvTranspose2d(c, c, 2, stride=2)
        self.conv_logits = nn.Conv2d(c, k, 1)

    def forward(self, x):
        for m in self.convs:
            x = m(x)
        return self.conv_logits(F.relu(self.upsample(x)))


class RoIHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.bbox_head = Shared2FCBBoxHead()
        self.mask_head = FCNMaskHead()


class MaskRCNN(nn.Module):
    def __init__(self, ref_dir):
        super().__init__()
        self.backbone = build_backbone(ref_dir)
        self.neck = FPN([16, 32, 64, 128])
        self.rpn_head = RPNHead()
        self.roi_head = RoIHead()

    def features(self, imgs):
        return self.neck(self.backbone(imgs))


# ----------------------------------------------------------------------------------------------
# box ops (MMDet 2.x semantics, float32)
# ----------------------------------------------------------------------------------------------
def base_anchors(stride, scales=(4.0,), ratios=(0.5, 1.0, 2.0)):
    base = float(stride)
    ratios = torch.tensor(ratios, dtype=torch.float32)
    scales = torch.tensor(scales, dtype=torch.float32)
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    ws = (base * w_ratios[:, None] * scales[None, :]).view(-1)
    hs = (base * h_ratios[:, None] * scales[None, :]).view(-1)
    return torch.stack([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs], dim=-1)  # center offset 0


_ANCHOR_CACHE = {}


def grid_anchors(sizes):
    """Per level [H*W*A, 4] in (h, w, a) order."""
    out = []
    for (h, w), s in zip(sizes, STRIDES):
        key = (h, w, s)
        if key not in _ANCHOR_CACHE:
            base = base_anchors(s)
            sx = torch.arange(0, w, dtype=torch.float32) * s
            sy = torch.arange(0, h, dtype=torch.float32) * s
            yy, xx = torch.meshgrid(sy, sx, indexing='ij')
            shifts = torch.stack([xx.reshape(-1), yy.reshape(-1), xx.reshape(-1), yy.reshape(-1)], dim=-1)
            _ANCHOR_CACHE[key] = (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)
        out.append(_ANCHOR_CACHE[key])
    return out


def valid_flags(sizes, pad_shape, a=3):
    ph, pw = pad_shape
    out = []
    for (h, w), s in zip(sizes, STRIDES):
        vh, vw = min(math.ceil(ph / s), h), min(math.ceil(pw / s), w)
        f = torch.zeros(h, w, dtype=torch.bool)
        f[:vh, :vw] = True
        out.append(f[:, :, None].expand(h, w, a).reshape(-1))
    return out


def box_iou(a, b):
    """[A, B] IoU (MMDet bbox_overlaps, eps 1e-6)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-6)
    return inter / union


def max_iou_assign(bboxes, gt, pos_thr, neg_thr, min_pos):
    """gt_inds [N]: -1 ignore, 0 negative, i+1 positive for gt i (match_low_quality, gt_max_assign_all)."""
    n, g = bboxes.shape[0], gt.shape[0]
    gt_inds = torch.full((n,), -1, dtype=torch.long)
    if g == 0 or n == 0:
        if g == 0:
            gt_inds.fill_(0)
        return gt_inds
    ov = box_iou(gt, bboxes)  # [G, N]
    max_ov, argmax = ov.max(dim=0)
    gt_max, _ = ov.max(dim=1)
    gt_inds[(max_ov >= 0) & (max_ov < neg_thr)] = 0
    pos = max_ov >= pos_thr
    gt_inds[pos] = argmax[pos] + 1
    for i in range(g):
        if gt_max[i] >= min_pos:
            gt_inds[ov[i] == gt_max[i]] = i + 1
    return gt_inds


def random_choice(inds, k):
    if inds.numel() <= k:
        return inds
    return torch.sort(inds[torch.randperm(inds.numel())[:k]])[0]


def random_sample(gt_inds, num, pos_fraction):
    pos = random_choice(torch.nonzero(gt_inds > 0).view(-1), int(math.floor(num * pos_fraction)))
    neg = random_choice(torch.nonzero(gt_inds == 0).view(-1), num - pos.numel())
    return pos, neg


def encode(p, g, stds):
    pw, ph = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    px, py = (p[:, 0] + p[:, 2]) * 0.5, (p[:, 1] + p[:, 3]) * 0.5
    gw, gh = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
    gx, gy = (g[:, 0] + g[:, 2]) * 0.5, (g[:, 1] + g[:, 3]) * 0.5
    d = torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=-1)
    return d / torch.tensor(stds, dtype=d.dtype)


def decode(rois, deltas, stds, max_shape, wh_ratio_clip=16 / 1000):
    """rois [N, 4], deltas [N, 4C] -> [N, 4C] boxes clipped to max_shape (h, w)."""
    n = rois.shape[0]
    d = deltas.reshape(n, -1, 4) * torch.tensor(stds, dtype=deltas.dtype)
    max_ratio = abs(math.log(wh_ratio_clip))
    dx, dy = d[..., 0], d[..., 1]
    dw, dh = d[..., 2].clamp(-max_ratio, max_ratio), d[..., 3].clamp(-max_ratio, max_ratio)
    px, py = ((rois[:, 0] + rois[:, 2]) * 0.5)[:, None], ((rois[:, 1] + rois[:, 3]) * 0.5)[:, None]
    pw, ph = (rois[:, 2] - rois[:, 0])[:, None], (rois[:, 3] - rois[:, 1])[:, None]
    gw, gh = pw * dw.exp(), ph * dh.exp()
    gx, gy = px + pw * dx, py + ph * dy
    h, w = max_shape
    x1 = (gx - gw * 0.5).clamp(0, w)
    y1 = (gy - gh * 0.5).clamp(0, h)
    x2 = (gx + gw * 0.5).clamp(0, w)
    y2 = (gy + gh * 0.5).clamp(0, h)
    return torch.stack([x1, y1, x2, y2], dim=-1).reshape(n, -1)


def bce_logits(x, t):
    return F.relu(x) - x * t + torch.log1p(torch.exp(-x.abs()))


# ----------------------------------------------------------------------------------------------
# heads' train / test logic
# ----------------------------------------------------------------------------------------------
# Recipe switches (defaults: this framework's MMDetection semantics) for comparisons with
# torchvision's choices: smooth-L1 (beta 1/9) box losses, 2000 training proposals, soft unaligned
# mask targets, PyTorch's default Linear init in the box head.
RECIPE = {'box_loss': 'l1', 'train_proposals': 1000, 'mask_target': 'binary', 'mask_target_aligned': True}


def box_loss(d):
    """Elementwise box regression loss of the differences d (L1, or smooth-L1 with beta 1/9)."""
    if RECIPE['box_loss'] == 'l1':
        return d.abs()
    beta = 1.0 / 9
    a = d.abs()
    return torch.where(a < beta, 0.5 * a * a / beta, a - 0.5 * beta)


def rpn_flatten(cls, reg):
    n = cls[0].shape[0]
    logits = torch.cat([c.permute(0, 2, 3, 1).reshape(n, -1) for c in cls], 1)
    deltas = torch.cat([r.permute(0, 2, 3, 1).reshape(n, -1, 4) for r in reg], 1)
    return logits, deltas


def rpn_loss(cls, reg, gts, metas):
    sizes = [tuple(c.shape[2:]) for c in cls]
    anchors = torch.cat(grid_anchors(sizes))
    logits, deltas = rpn_flatten(cls, reg)
    n, total = logits.shape
    labels = torch.zeros(n, total)
    label_w = torch.zeros(n, total)
    box_t = torch.zeros(n, total, 4)
    box_w = torch.zeros(n, total, 4)
    num_sampled = 0
    for i in range(n):
        inside = torch.nonzero(torch.cat(valid_flags(sizes, metas[i]['pad_shape']))).view(-1)
        cand = anchors[inside]
        gtb = gts[i]['boxes']
        gt_inds = max_iou_assign(cand, gtb, 0.7, 0.3, 0.3)
        pos, neg = random_sample(gt_inds, 256, 0.5)
        num_sampled += pos.numel() + neg.numel()
        if pos.numel():
            a = inside[pos]
            labels[i, a] = 1
            label_w[i, a] = 1
            box_t[i, a] = encode(cand[pos], gtb[gt_inds[pos] - 1], (1.0, 1.0, 1.0, 1.0))
            box_w[i, a] = 1
        label_w[i, inside[neg]] = 1
    avg = max(num_sampled, 1) + F32_EPS
    loss_cls = (bce_logits(logits, labels) * label_w).sum() / avg
    loss_bbox = (box_loss(deltas - box_t) * box_w).sum() / avg
    return loss_cls, loss_bbox


@torch.no_grad()
def rpn_proposals(cls, reg, metas, nms_pre, max_per_img=1000, iou=0.7):
    sizes = [tuple(c.shape[2:]) for c in cls]
    level_anchors = grid_anchors(sizes)
    out = []
    for i, meta in enumerate(metas):
        boxes, scores, ids = [], [], []
        for l, (c, r) in enumerate(zip(cls, reg)):
            sc = c[i].permute(1, 2, 0).reshape(-1).sigmoid()
            dl = r[i].permute(1, 2, 0).reshape(-1, 4)
            k = min(nms_pre, sc.numel())
            sc, order = sc.topk(k)
            dec = decode(level_anchors[l][order], dl[order], (1.0, 1.0, 1.0, 1.0), meta['img_shape'])
            keep = ((dec[:, 2] - dec[:, 0]) > 0) & ((dec[:, 3] - dec[:, 1]) > 0)
            boxes.append(dec[keep])
            scores.append(sc[keep])
            ids.append(torch.full((int(keep.sum()),), l, dtype=torch.long))
        b, s, d = torch.cat(boxes), torch.cat(scores), torch.cat(ids)
        keep = batched_nms(b, s, d, iou)[:max_per_img]
        out.append((b[keep], s[keep]))
    return out


def extract_rois(feats, rois, out_size):
    """SingleRoIExtractor: rois [R, 5] -> [R, C, s, s] from P2-P5 chosen by size (finest_scale 56)."""
    scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
    lvl = torch.floor(torch.log2(scale / 56 + 1e-6))
    lvl = torch.nan_to_num(lvl, nan=0.0).clamp(0, 3).long()
    out = feats[0].new_zeros(rois.shape[0], feats[0].shape[1], out_size, out_size)
    for l in range(4):
        idx = torch.nonzero(lvl == l).view(-1)
        if idx.numel():
            out[idx] = roi_align(feats[l], rois[idx], (out_size, out_size), spatial_scale=1.0 / STRIDES[l],
                                 sampling_ratio=0, aligned=True)
    return out


def to_rois(groups):
    rows = []
    for i, gs in enumerate(groups):
        for g in gs:
            if g.shape[0]:
                rows.append(torch.cat([torch.full((g.shape[0], 1), float(i)), g], 1))
    return torch.cat(rows) if rows else torch.zeros(0, 5)


def mask_targets(pos, gt_idx, masks, size=28):
    """MMDet mask_target_single on bitmaps: roi_align (aligned, adaptive) of the GT bitmap, >= 0.5."""
    if pos.shape[0] == 0:
        return torch.zeros(0, size, size)
    mh, mw = masks.shape[1:]
    b = torch.stack([pos[:, 0].clamp(0, mw), pos[:, 1].clamp(0, mh), pos[:, 2].clamp(0, mw), pos[:, 3].clamp(0, mh)], 1)
    rois = torch.cat([torch.arange(pos.shape[0], dtype=torch.float32)[:, None], b], 1)
    m = masks[gt_idx].float()[:, None]  # [P, 1, mh, mw]
    t = roi_align(m, rois, (size, size), spatial_scale=1.0, sampling_ratio=0, aligned=RECIPE['mask_target_aligned'])[:, 0]
    return (t >= 0.5).float() if RECIPE['mask_target'] == 'binary' else t


def roi_loss(model, feats, proposals, gts):
    bh, mh = model.roi_head.bbox_head, model.roi_head.mask_head
    pos_l, neg_l, labels_l, tgt_l, w_l, pos_lab_l, mtgt_l = [], [], [], [], [], [], []
    for i, (pb, _) in enumerate(proposals):
        gtb, gtl = gts[i]['boxes'], gts[i]['labels']
        gt_inds = max_iou_assign(pb, gtb, 0.5, 0.5, 0.5)
        g = gtb.shape[0]
        if g > 0:  # add_gt_as_proposals
            allb = torch.cat([gtb, pb])
            gt_inds = torch.cat([torch.arange(1, g + 1), gt_inds])
        else:
            allb = pb
        pos, neg = random_sample(gt_inds, 128, 0.25)
        pos_b, neg_b = allb[pos], allb[neg]
        pos_gt = gt_inds[pos] - 1
        pos_lab = gtl[pos_gt]
        p, r = pos.numel(), pos.numel() + neg.numel()
        lab = torch.full((r,), NUM_CLASSES, dtype=torch.long)
        lab[:p] = pos_lab
        tgt = torch.zeros(r, 4 * NUM_CLASSES)
        w = torch.zeros(r, 4 * NUM_CLASSES)
        if p:
            enc = encode(pos_b, gtb[pos_gt], (0.1, 0.1, 0.2, 0.2))
            cols = 4 * pos_lab[:, None] + torch.arange(4)[None, :]
            rows = torch.arange(p)[:, None].expand(p, 4)
            tgt[rows, cols] = enc
            w[rows, cols] = 1
        pos_l.append(pos_b)
        neg_l.append(neg_b)
        labels_l.append(lab)
        tgt_l.append(tgt)
        w_l.append(w)
        pos_lab_l.append(pos_lab)
        mtgt_l.append(mask_targets(pos_b, pos_gt, gts[i]['masks']))
    rois = to_rois([[p, n] for p, n in zip(pos_l, neg_l)])
    labels = torch.cat(labels_l)
    cls, reg = bh(extract_rois(feats, rois, 7))
    r = labels.numel()
    loss_cls = F.cross_entropy(cls, labels)
    loss_bbox = (box_loss(reg - torch.cat(tgt_l)) * torch.cat(w_l)).sum() / (max(r, 1) + F32_EPS)
    acc = (cls.argmax(-1) == labels).float().sum() * (100.0 / r)
    pos_labels = torch.cat(pos_lab_l)
    if pos_labels.numel() == 0:
        loss_mask = cls.sum() * 0
    else:
        pos_rois = to_rois([[p] for p in pos_l])
        logits = mh(extract_rois(feats, pos_rois, 14))
        picked = logits[torch.arange(pos_labels.numel()), pos_labels]
        loss_mask = bce_logits(picked, torch.cat(mtgt_l)).mean()
    return loss_cls, loss_bbox, loss_mask, acc.detach()


def model_loss(model, imgs, gts, metas):
    feats = model.features(imgs)
    cls, reg = model.rpn_head(feats)
    loss_rpn_cls, loss_rpn_bbox = rpn_loss(cls, reg, gts, metas)
    proposals = rpn_proposals([c.detach() for c in cls], [r.detach() for r in reg], metas, 2000, RECIPE['train_proposals'])
    loss_cls, loss_bbox, loss_mask, acc = roi_loss(model, feats, proposals, gts)
    return dict(loss_rpn_cls=loss_rpn_cls, loss_rpn_bbox=loss_rpn_bbox, loss_cls=loss_cls, loss_bbox=loss_bbox,
                loss_mask=loss_mask, acc=acc)


def paste_masks(probs, boxes, h, w, thr=0.5):
    """MMDet _do_paste_mask (grid_sample bilinear, zeros, align_corners=False) over the whole image."""
    k = boxes.shape[0]
    if k == 0:
        return torch.zeros(0, h, w, dtype=torch.bool)
    x0, y0, x1, y1 = [boxes[:, j:j + 1] for j in range(4)]
    ix = (torch.arange(w, dtype=torch.float32)[None, :] + 0.5 - x0) / (x1 - x0) * 2 - 1  # [K, W]
    iy = (torch.arange(h, dtype=torch.float32)[None, :] + 0.5 - y0) / (y1 - y0) * 2 - 1  # [K, H]
    for t in (ix, iy):
        t[torch.isinf(t)] = 0
        t[torch.isnan(t)] = -10
    grid = torch.stack([ix[:, None, :].expand(k, h, w), iy[:, :, None].expand(k, h, w)], dim=3)
    out = F.grid_sample(probs[:, None], grid, mode='bilinear', padding_mode='zeros', align_corners=False)
    return out[:, 0] >= thr


@torch.no_grad()
def predict(model, imgs, metas):
    feats = model.features(imgs)
    cls, reg = model.rpn_head(feats)
    proposals = rpn_proposals(cls, reg, metas, 1000)
    bh, mh = model.roi_head.bbox_head, model.roi_head.mask_head
    rois = to_rois([[p[0]] for p in proposals])
    logits, deltas = bh(extract_rois(feats, rois, 7))
    probs = F.softmax(logits, -1)
    results = []
    off = 0
    for i, (pb, _) in enumerate(proposals):
        n = pb.shape[0]
        meta = metas[i]
        sx, sy = meta['scale_factor']
        dec = decode(pb, deltas[off:off + n], (0.1, 0.1, 0.2, 0.2), meta['img_shape']).reshape(n, NUM_CLASSES, 4)
        pr = probs[off:off + n, :NUM_CLASSES]
        off += n
        dec = dec / torch.tensor([sx, sy, sx, sy], dtype=torch.float32)
        sel = pr > 0.05
        r_idx, c_idx = torch.nonzero(sel, as_tuple=True)
        b, s, l = dec[r_idx, c_idx], pr[r_idx, c_idx], c_idx
        keep = batched_nms(b, s, l, 0.5)[:100]
        b, s, l = b[keep], s[keep], l[keep]
        oh, ow = meta['ori_shape'][:2]
        if b.shape[0]:
            scaled = b * torch.tensor([sx, sy, sx, sy], dtype=torch.float32)
            mrois = torch.cat([torch.full((b.shape[0], 1), float(i)), scaled], 1)
            ml = mh(extract_rois(feats, mrois, 14))
            mp = ml[torch.arange(b.shape[0]), l].sigmoid()
            masks = paste_masks(mp, b, oh, ow)
        else:
            masks = torch.zeros(0, oh, ow, dtype=torch.bool)
        results.append((b, s, l, masks))
    return results


def rle_uncompressed(mask):
    """COCO uncompressed RLE of a [h, w] 0/1 mask: runs over the column-major flattening, zeros first."""
    h, w = mask.shape
    flat = np.asarray(mask, dtype=np.uint8).flatten(order='F')
    change = np.nonzero(np.diff(flat))[0] + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        runs = [0] + runs
    return {'size': [int(h), int(w)], 'counts': [int(r) for r in runs]}


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
def load_batch(stem):
    with open(stem + '.json') as f:
        meta = json.load(f)
    raw = np.fromfile(stem + '.bin', dtype=np.uint8)
    n, H, W = meta['batch_shape']
    mean = np.array(meta['mean'], dtype=np.float64)
    inv_std = 1.0 / np.array(meta['std'], dtype=np.float64)
    imgs = np.zeros((n, 3, H, W), dtype=np.float32)
    gts, metas = [], []
    off = 0
    for i, im in enumerate(meta['images']):
        h, w = im['img_shape']
        u = raw[off:off + h * w * 3].reshape(h, w, 3)
        off += h * w * 3
        x = ((u.astype(np.float64) - mean) * inv_std).astype(np.float32)
        imgs[i, :, :h, :w] = x.transpose(2, 0, 1)
        masks = None
        if im.get('mask_shape'):
            mh, mw = im['mask_shape']
            nb = (mh * mw + 7) // 8
            ms = []
            for _ in range(im['n_masks']):
                ms.append(np.unpackbits(raw[off:off + nb])[:mh * mw].reshape(mh, mw))
                off += nb
            masks = torch.from_numpy(np.stack(ms) if ms else np.zeros((0, mh, mw), np.uint8))
        gts.append({'boxes': torch.tensor(im['boxes'], dtype=torch.float32).reshape(-1, 4),
                    'labels': torch.tensor(im['labels'], dtype=torch.long), 'masks': masks})
        metas.append(im)
    assert off == raw.size, f'{stem}: read {off} of {raw.size} bytes'
    return torch.from_numpy(imgs), gts, metas


# ----------------------------------------------------------------------------------------------
# optimisation
# ----------------------------------------------------------------------------------------------
def is_no_decay(name, p):
    return p.dim() <= 1 or name.endswith('.bias') or name.split('.')[-1] in ('layer_scale_1', 'layer_scale_2') or \
        name in ('pos_embed', 'cls_token', 'backbone.pos_embed', 'backbone.cls_token')


def lr_at(it, base=1e-3, warmup=200, ratio=1e-3, steps=(1125, 1350), gamma=0.1):
    k = sum(1 for s in steps if it >= s)
    regular = base * gamma ** k
    if it < warmup:
        return regular * (1 - (1 - it / warmup) * (1 - ratio))
    return regular


def evaluate(model, dump, out_dir, it, max_val=None):
    model.eval()
    val_dir = os.path.join(dump, 'val')
    stems = sorted(f[:-5] for f in os.listdir(val_dir) if f.endswith('.json'))
    if max_val:
        stems = stems[:max_val]
    bbox_res, segm_res = [], []
    t0 = time.time()
    for s in stems:
        imgs, _, metas = load_batch(os.path.join(val_dir, s))
        for meta, (b, sc, l, m) in zip(metas, predict(model, imgs, metas)):
            for j in range(b.shape[0]):
                x1, y1, x2, y2 = [float(v) for v in b[j]]
                common = {'image_id': int(meta['image_id']), 'category_id': int(l[j]) + 1, 'score': float(sc[j])}
                bbox_res.append({**common, 'bbox': [x1, y1, x2 - x1, y2 - y1]})
                segm_res.append({**common, 'segmentation': rle_uncompressed(m[j].numpy())})
    os.makedirs(out_dir, exist_ok=True)
    for kind, res in (('bbox', bbox_res), ('segm', segm_res)):
        with open(os.path.join(out_dir, f'results_{it}.{kind}.json'), 'w') as f:
            json.dump(res, f)
    model.train()
    print(f'eval at {it}: {len(stems)} images, {len(bbox_res)} detections, {time.time() - t0:.1f}s', flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--dump', default='/tmp/det_dump')
    ap.add_argument('--iters', type=int, default=1500)
    ap.add_argument('--eval-at', default='750,1500')
    ap.add_argument('--log', default='/tmp/torch_ref/log.jsonl')
    ap.add_argument('--out-dir', default='/tmp/torch_ref')
    ap.add_argument('--log-interval', type=int, default=25)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--max-val', type=int, default=0, help='evaluate only the first N val samples (0: all)')
    ap.add_argument('--c2f-ref', default='/work/shared/reference')
    ap.add_argument('--print-first', action='store_true', help='print every iteration\'s losses')
    ap.add_argument('--box-loss', choices=['l1', 'smooth_l1'], default='l1')
    ap.add_argument('--train-proposals', type=int, default=1000)
    ap.add_argument('--mask-target', choices=['binary', 'soft'], default='binary')
    ap.add_argument('--mask-target-unaligned', action='store_true')
    ap.add_argument('--torch-linear-init', action='store_true', help='PyTorch default init for the box head linears')
    args = ap.parse_args()
    RECIPE.update(box_loss=args.box_loss, train_proposals=args.train_proposals, mask_target=args.mask_target,
                  mask_target_aligned=not args.mask_target_unaligned)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    eval_at = {int(v) for v in args.eval_at.split(',') if v.strip()}

    model = MaskRCNN(args.c2f_ref)
    sd = read_safetensors(os.path.join(args.dump, 'init.safetensors'))
    model.load_state_dict(sd, strict=True)
    if args.torch_linear_init:
        for m in model.roi_head.bbox_head.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()
    model.train()
    print(f'recipe: {RECIPE}, torch_linear_init={args.torch_linear_init}', flush=True)
    print(f'loaded {len(sd)} tensors strictly from init.safetensors', flush=True)

    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if is_no_decay(n, p) else decay).append(p)
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.05}, {'params': no_decay, 'weight_decay': 0.0}],
                            lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    print(f'{len(decay)} decayed params, {len(no_decay)} not decayed', flush=True)

    os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)
    logf = open(args.log, 'w')
    keys = ['loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask', 'acc', 'loss']
    window = {k: [] for k in keys}
    times = []
    for it in range(args.iters):
        t0 = time.time()
        lr = lr_at(it)
        for g in opt.param_groups:
            g['lr'] = lr
        imgs, gts, metas = load_batch(os.path.join(args.dump, 'train', f'{it:05d}'))
        out = model_loss(model, imgs, gts, metas)
        total = sum(v for k, v in out.items() if 'loss' in k)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        vals = {k: float(v) for k, v in out.items()}
        vals['loss'] = float(total)
        if not math.isfinite(vals['loss']):
            raise SystemExit(f'loss is not finite at iter {it + 1}: {vals}')
        for k in keys:
            window[k].append(vals[k])
        times.append(time.time() - t0)
        if args.print_first:
            print(json.dumps({'iter': it + 1, 'lr': lr, **vals}), flush=True)
        if (it + 1) % args.log_interval == 0 or it + 1 == args.iters:
            rec = {'iter': it + 1, 'lr': lr, **{k: sum(v) / len(v) for k, v in window.items()},
                   's_per_iter': sum(times) / len(times)}
            logf.write(json.dumps(rec) + '\n')
            logf.flush()
            print(json.dumps(rec), flush=True)
            window = {k: [] for k in keys}
            times = []
        if it + 1 in eval_at:
            evaluate(model, args.dump, args.out_dir, it + 1, args.max_val)
    logf.close()


if __name__ == '__main__':
    main()
