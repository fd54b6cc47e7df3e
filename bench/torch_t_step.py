#!/usr/bin/python3
"""PyTorch reference for `npm run bench:train`: seconds per Conv2Former-T training step at 224x224,
batch 1 (forward, loss = sum over the four stage outputs of mean(x^2), backward, AdamW step), the
same step `bench/train.ts` times in this framework.

Usage: /usr/bin/python3 bench/torch_t_step.py --ref ../shared/reference/conv2former_ref.py \
           [--threads 2] [--iters 5] [--size 224]
Prints one JSON line: {"threads": N, "s_per_iter": median, "runs": [...]}.
"""
import argparse
import importlib.util
import json
import os
import time

os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ref', required=True, help='path of conv2former_ref.py (the PyTorch Conv2Former)')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--iters', type=int, default=5)
    ap.add_argument('--size', type=int, default=224)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    spec = importlib.util.spec_from_file_location('conv2former_ref', a.ref)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    dims, depths, k = ref.VARIANTS['t']
    torch.manual_seed(0)
    model = ref.C2F(dims, depths, k).train()
    # The classification head is not part of the timed step (as in bench/train.ts).
    params = [p for n, p in model.named_parameters() if not n.startswith(('head.', 'pred.'))]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)
    x = torch.randn(1, 3, a.size, a.size)

    def step():
        opt.zero_grad(set_to_none=True)
        x_ = x
        outs = []
        for i in range(4):
            x_ = model.stages[i](model.downsample_layers[i](x_))
            outs.append(x_)
        loss = sum(o.square().mean() for o in outs)
        loss.backward()
        opt.step()

    step()
    runs = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        step()
        runs.append(time.perf_counter() - t0)
    print(json.dumps({'threads': a.threads, 's_per_iter': sorted(runs)[len(runs) // 2], 'runs': runs}))


if __name__ == '__main__':
    main()
