#!/usr/bin/env python3
"""PyTorch yardstick for `kd bench`: times the cases of bench/cases.json with plain PyTorch.

    python3 bench/torch_reference.py [--cases bench/cases.json] [--out torch.json] [--quick]
        [--device cuda|cpu] [--only SUBSTRING] [--tf32 | --both] [--check-params]

The models are our own re-implementation of openai/guided-diffusion's UNetModel and
EncoderUNetModel (attention pool), built from configs/*.json; their state_dict names and shapes
are checked against ../shared/reference/<config>.params.txt whenever that file can be found.
Written for PyTorch 1.13 .. 2.11 (CPU smoke tests run on 1.13, the GPU machine has 2.11).
"""
import argparse, inspect, json, math, os, statistics, sys, time, traceback, warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_SDPA = hasattr(F, "scaled_dot_product_attention")

# ----------------------------------------------------------------------------------------------
# Model: guided-diffusion's UNetModel / EncoderUNetModel (see shared/reference/ARCHITECTURE.md)
# ----------------------------------------------------------------------------------------------
ATTN_IMPL = "einsum"  # "einsum": guided-diffusion's QKVAttention math; "sdpa": F.scaled_dot_product_attention


def timestep_embedding(t, dim, max_period=10000):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1) if dim % 2 else emb


def gn(ch):
    return nn.GroupNorm(32, ch, eps=1e-5)


def zero(m):
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


def qkv_attention(qkv, heads, new_order):
    """qkv [N, 3C, T] -> [N, C, T]; guided-diffusion's QKVAttention (new order) / QKVAttentionLegacy."""
    n, width, length = qkv.shape
    ch = width // (3 * heads)
    if new_order:
        q, k, v = (t.reshape(n * heads, ch, length) for t in qkv.chunk(3, dim=1))
    else:
        q, k, v = qkv.reshape(n * heads, 3 * ch, length).split(ch, dim=1)
    if ATTN_IMPL == "sdpa" and HAS_SDPA:  # same maths, [B, T, ch] layout, scale 1/sqrt(ch)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return a.transpose(1, 2).reshape(n, heads * ch, length)
    s = 1.0 / math.sqrt(math.sqrt(ch))
    w = torch.einsum("bct,bcs->bts", q * s, k * s)
    w = torch.softmax(w.float(), dim=-1).type(w.dtype)
    return torch.einsum("bts,bcs->bct", w, v).reshape(n, heads * ch, length)


class ResBlock(nn.Module):
    def __init__(self, ch, emb_ch, dropout, out_ch=None, scale_shift=False, up=False, down=False):
        super().__init__()
        out_ch = out_ch or ch
        self.scale_shift, self.up, self.down = scale_shift, up, down
        self.in_layers = nn.Sequential(gn(ch), nn.SiLU(), nn.Conv2d(ch, out_ch, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_ch, 2 * out_ch if scale_shift else out_ch))
        self.out_layers = nn.Sequential(gn(out_ch), nn.SiLU(), nn.Dropout(dropout),
                                        zero(nn.Conv2d(out_ch, out_ch, 3, padding=1)))
        self.skip_connection = nn.Identity() if out_ch == ch else nn.Conv2d(ch, out_ch, 1)

    def resample(self, x):
        if self.up:
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return F.avg_pool2d(x, 2, 2) if self.down else x

    def forward(self, x, emb):
        if self.up or self.down:
            h = self.in_layers[:-1](x)
            h, x = self.resample(h), self.resample(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    def __init__(self, ch, num_heads=1, num_head_channels=-1, new_order=False):
        super().__init__()
        self.heads = num_heads if num_head_channels == -1 else ch // num_head_channels
        self.new_order = new_order
        self.norm = gn(ch)
        self.qkv = nn.Conv1d(ch, 3 * ch, 1)
        self.proj_out = zero(nn.Conv1d(ch, ch, 1))

    def forward(self, x, emb=None):
        n, c, *spatial = x.shape
        x = x.reshape(n, c, -1)
        h = qkv_attention(self.qkv(self.norm(x)), self.heads, self.new_order)
        return (x + self.proj_out(h)).reshape(n, c, *spatial)


class Downsample(nn.Module):  # resblock_updown false
    def __init__(self, ch):
        super().__init__()
        self.op = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x, emb=None):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x, emb=None):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Block(nn.Sequential):  # TimestepEmbedSequential
    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, (ResBlock, AttentionBlock, Downsample, Upsample)) else layer(x)
        return x


class AttentionPool2d(nn.Module):
    def __init__(self, spatial, ch, num_head_channels, out_dim):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(ch, spatial ** 2 + 1) / ch ** 0.5)
        self.qkv_proj = nn.Conv1d(ch, 3 * ch, 1)
        self.c_proj = nn.Conv1d(ch, out_dim, 1)
        self.heads = ch // num_head_channels

    def forward(self, x):
        n, c = x.shape[:2]
        x = x.reshape(n, c, -1)
        x = torch.cat([x.mean(dim=-1, keepdim=True), x], dim=-1) + self.positional_embedding[None].to(x.dtype)
        return self.c_proj(qkv_attention(self.qkv_proj(x), self.heads, True))[:, :, 0]


class UNet(nn.Module):
    """UNetModel when cfg["model"] == "unet", EncoderUNetModel (attention pool) when "classifier"."""

    def __init__(self, cfg):
        super().__init__()
        mc, mult, nres = cfg["model_channels"], cfg["channel_mult"], cfg["num_res_blocks"]
        attn_ds, dropout = set(cfg.get("attention_resolutions", [])), cfg.get("dropout", 0.0)
        heads, hc = cfg.get("num_heads", 1), cfg.get("num_head_channels", -1)
        heads_up = cfg.get("num_heads_upsample", -1)
        heads_up = heads if heads_up == -1 else heads_up
        new_order, ss = cfg.get("use_new_attention_order", False), cfg.get("use_scale_shift_norm", False)
        updown, emb_ch = cfg.get("resblock_updown", False), 4 * mc
        self.mc, self.encoder = mc, cfg["model"] == "classifier"
        self.num_classes = None if self.encoder else cfg.get("num_classes")
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        if self.num_classes:
            self.label_emb = nn.Embedding(self.num_classes, emb_ch)
        RB = lambda c, o=None, **kw: ResBlock(c, emb_ch, dropout, o, ss, **kw)
        Attn = lambda c, nh: AttentionBlock(c, nh, hc, new_order)
        ch = int(mult[0] * mc)
        self.input_blocks = nn.ModuleList([Block(nn.Conv2d(cfg["in_channels"], ch, 3, padding=1))])
        chans, ds = [ch], 1
        for level, m in enumerate(mult):
            for _ in range(nres):
                layers = [RB(ch, int(m * mc))]
                ch = int(m * mc)
                if ds in attn_ds:
                    layers.append(Attn(ch, heads))
                self.input_blocks.append(Block(*layers))
                chans.append(ch)
            if level != len(mult) - 1:
                self.input_blocks.append(Block(RB(ch, ch, down=True) if updown else Downsample(ch)))
                chans.append(ch)
                ds *= 2
        self.middle_block = Block(RB(ch), Attn(ch, heads), RB(ch))
        if self.encoder:
            assert cfg.get("pool", "attention") == "attention", "only the attention pool is implemented"
            self.out = nn.Sequential(gn(ch), nn.SiLU(),
                                     AttentionPool2d(cfg["image_size"] // ds, ch, hc, cfg["out_channels"]))
            return
        self.output_blocks = nn.ModuleList()
        for level, m in list(enumerate(mult))[::-1]:
            for i in range(nres + 1):
                layers = [RB(ch + chans.pop(), int(mc * m))]
                ch = int(mc * m)
                if ds in attn_ds:
                    layers.append(Attn(ch, heads_up))
                if level and i == nres:
                    layers.append(RB(ch, ch, up=True) if updown else Upsample(ch))
                    ds //= 2
                self.output_blocks.append(Block(*layers))
        self.out = nn.Sequential(gn(ch), nn.SiLU(), zero(nn.Conv2d(int(mult[0] * mc), cfg["out_channels"], 3, padding=1)))

    def forward(self, x, t, y=None):
        emb = self.time_embed(timestep_embedding(t, self.mc))
        if self.num_classes:
            emb = emb + self.label_emb(y)
        hs, h = [], x
        for b in self.input_blocks:
            h = b(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        if self.encoder:
            return self.out(h)
        for b in self.output_blocks:
            h = b(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


def params_file(config_path):
    name = os.path.splitext(os.path.basename(config_path))[0] + ".params.txt"
    for d in (os.path.join(REPO, "..", "shared", "reference"), os.path.join(REPO, "shared", "reference")):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    return None


def check_params(model, path):
    """Compare state_dict names/shapes (and the total count) with a params.txt listing; returns errors."""
    want, total = {}, None
    for line in open(path):
        if line.startswith("# total parameters:"):
            total = int(line.split(":")[1])
        elif line.strip() and not line.startswith("#"):
            name, shape = line.split()
            want[name] = tuple(int(s) for s in shape.split("x"))
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    errs = [f"missing {k} {v}" for k, v in want.items() if k not in have]
    errs += [f"unexpected {k} {v}" for k, v in have.items() if k not in want]
    errs += [f"shape {k}: ours {have[k]} reference {v}" for k, v in want.items() if k in have and have[k] != v]
    n = sum(p.numel() for p in model.parameters())
    if total is not None and n != total:
        errs.append(f"total parameters ours {n} reference {total}")
    return errs


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------
class Timer:
    def __init__(self, device, warmup, rep, min_reps):
        self.device, self.warmup, self.rep, self.min_reps = device, warmup, rep, min_reps
        self.do_bench = None
        if device.type == "cuda":
            try:
                from triton.testing import do_bench
                self.do_bench = do_bench
                self.median_kw = ({"return_mode": "median"} if "return_mode" in inspect.signature(do_bench).parameters
                                  else {"quantiles": [0.5]})
            except Exception as e:  # noqa: BLE001
                print(f"triton unavailable ({e}); using the synchronize-around-loop timer")
        self.name = "triton.testing.do_bench (median)" if self.do_bench else "sync loop (median)"

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def once(self, fn):
        self.sync()
        t0 = time.perf_counter()
        fn()
        self.sync()
        return (time.perf_counter() - t0) * 1e3

    def __call__(self, fn):
        self.once(fn)  # first call: allocator, cuDNN autotune, lazy init
        est = min(self.once(fn) for _ in range(2))
        # do_bench sizes its loop as rep / estimate; make sure slow steps still get min_reps samples
        rep, warmup = max(self.rep, self.min_reps * est), max(self.warmup, 2 * est)
        if self.do_bench:
            r = self.do_bench(fn, warmup=int(math.ceil(warmup)), rep=int(math.ceil(rep)), **self.median_kw)
            return float(r[0] if isinstance(r, (list, tuple)) else r)
        t_end = time.perf_counter() + warmup / 1e3
        while time.perf_counter() < t_end:
            fn()
        n = max(self.min_reps, min(1000, int(rep / max(est, 1e-3))))
        return statistics.median(self.once(fn) for _ in range(n))


# ----------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------
def make_adamw(params, dev):
    params = list(params)
    if dev.type == "cuda":
        try:
            return torch.optim.AdamW(params, lr=1e-4, fused=True), "fused AdamW"
        except (TypeError, RuntimeError):
            pass
    try:
        return torch.optim.AdamW(params, lr=1e-4, foreach=True), "foreach AdamW"
    except (TypeError, RuntimeError):
        return torch.optim.AdamW(params, lr=1e-4), "AdamW"


def ddim_cfg(x, eps_c, eps_u, w, c1=1.2, c2=0.6, a=0.95, e=0.3):
    eps = eps_c + w * (eps_c - eps_u)
    x0 = torch.clamp(c1 * x - c2 * eps, -1.0, 1.0)
    return a * x0 + e * ((c1 * x - x0) / c2)


def clear(ts):
    for t in ts:
        t.grad = None


def sdpa_backend(q, k, v, backward):
    """Which SDPA backend the dispatcher can use for these inputs (first that runs, in priority order)."""
    if q.device.type != "cuda" or not HAS_SDPA:
        return None
    try:
        from torch.nn.attention import sdpa_kernel, SDPBackend
        order = [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", getattr(SDPBackend, "CUDNN_ATTENTION", None)),
                 ("efficient", SDPBackend.EFFICIENT_ATTENTION), ("math", SDPBackend.MATH)]
    except ImportError:
        return None
    for name, be in order:
        if be is None:
            continue
        try:
            with warnings.catch_warnings(), sdpa_kernel([be]):
                warnings.simplefilter("ignore")
                qq, kk, vv = (t.detach().requires_grad_(backward) for t in (q, k, v))
                y = F.scaled_dot_product_attention(qq, kk, vv)
                if backward:
                    y.sum().backward()
            torch.cuda.synchronize()
            return name
        except RuntimeError:
            continue
    return None


def kernel_case(c, dev):
    """Returns (fn, note) for a kernel case."""
    op, g = c["op"], torch.Generator(device=dev).manual_seed(0)
    rnd = lambda *s, grad=False: torch.randn(*s, generator=g, device=dev).requires_grad_(grad)
    if op == "silu":
        x = rnd(c["n"])
        return (lambda: F.silu(x)), None
    if op == "sampling_step":
        x, ec, eu = rnd(*c["x"]), rnd(*c["x"]), rnd(*c["x"])
        return (lambda: ddim_cfg(x, ec, eu, c["w"])), "plain torch elementwise ops"
    if op == "group_norm":
        n, ch = c["x"][:2]
        x, gamma, beta = rnd(*c["x"], grad=c["backward"]), rnd(ch, grad=c["backward"]), rnd(ch, grad=c["backward"])
        emb = rnd(n, 2 * ch, grad=c["backward"])
        gout = rnd(*c["x"])
        leaves = [x, gamma, beta] + ([emb] if c["scale_shift"] else [])

        def fwd():
            y = F.group_norm(x, c["groups"], gamma, beta, eps=1e-5)
            if c["scale_shift"]:
                scale, shift = emb[:, :, None, None].chunk(2, dim=1)
                y = y * (1 + scale) + shift
            return F.silu(y) if c["silu"] else y
        if not c["backward"]:
            return fwd, None

        def fb():
            clear(leaves)
            fwd().backward(gout)
        return fb, None
    if op == "adamw":
        p = torch.nn.Parameter(rnd(c["n"]))
        p.grad = rnd(c["n"])
        opt, impl = make_adamw([p], dev)
        return opt.step, impl
    if op == "gemm":
        lead = [c["batch"]] if "batch" in c else []   # batched: torch.matmul runs a batched GEMM (cuBLAS)
        lead_a = [] if c.get("shared_a") else lead     # one A broadcast over the batch, as a Conv1x1's weight
        # stored transposed where asked, multiplied as views: cuBLAS takes the transposes itself
        a = rnd(*lead_a, c["k"], c["m"]).transpose(-1, -2) if c.get("trans_a") else rnd(*lead_a, c["m"], c["k"])
        b = rnd(*lead, c["n"], c["k"]).transpose(-1, -2) if c.get("trans_b") else rnd(*lead, c["k"], c["n"])
        return (lambda: a @ b), None
    if op == "conv3x3":
        cin, bk, r = c["x"][1], c["backward"], c.get("r", 3)   # r: the kernel's side (1 or 3), padded to keep the size
        x, w, bias = rnd(*c["x"], grad=bk), rnd(c["cout"], cin, r, r, grad=bk), rnd(c["cout"], grad=bk)
        if not bk:
            return (lambda: F.conv2d(x, w, bias, padding=r // 2)), None
        gout = rnd(c["x"][0], c["cout"], *c["x"][2:])

        def fb():
            clear([x, w, bias])
            F.conv2d(x, w, bias, padding=r // 2).backward(gout)
        return fb, None
    if op == "conv3x3_pass":  # one pass alone, as cuDNN's forward / backward-data / backward-filter kernels
        cin, r = c["x"][1], c.get("r", 3)
        x, w = rnd(*c["x"]), rnd(c["cout"], cin, r, r)
        gout = rnd(c["x"][0], c["cout"], *c["x"][2:])
        if c["pass"] == "forward":
            return (lambda: F.conv2d(x, w, padding=r // 2)), None
        if c["pass"] == "input_grad":
            return (lambda: torch.nn.grad.conv2d_input(x.shape, w, gout, padding=r // 2)), None
        return (lambda: torch.nn.grad.conv2d_weight(x, w.shape, gout, padding=r // 2)), None
    if op == "attention":
        shape, bk = (c["batch"], c["heads"], c["tokens"], c["head_dim"]), c["backward"]
        q, k, v = rnd(*shape, grad=bk), rnd(*shape, grad=bk), rnd(*shape, grad=bk)
        if HAS_SDPA:
            attn, note = F.scaled_dot_product_attention, "sdpa"
            be = sdpa_backend(q, k, v, bk)
            if be:
                note += f" (backend: {be})"
        else:
            attn = lambda q, k, v: torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ v
            note = "no F.scaled_dot_product_attention in this torch: softmax(qk^T/sqrt(d))v"
        if not bk:
            return (lambda: attn(q, k, v)), note
        gout = rnd(*shape)

        def fb():
            clear([q, k, v])
            attn(q, k, v).backward(gout)
        return fb, note
    if op == "sum":  # a reduction as sum_to makes them: every axis where "to" is 1 and x is not
        x = rnd(*c["x"])
        dims = [d for d, (a, b) in enumerate(zip(c["x"], c["to"])) if b == 1 and a > 1]
        return (lambda: x.sum(dim=dims, keepdim=True)), None
    raise ValueError(f"unknown op {op}")


class Schedule:  # linear betas 1e-4..0.02 over 1000 steps, in float64 then cast (as guided-diffusion)
    def __init__(self, dev, T=1000):
        b = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
        ab = torch.cumprod(1 - b, 0)
        ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
        post_var = b * (1 - ab_prev) / (1 - ab)
        f = lambda t: t.float().to(dev)
        self.T, self.betas, self.abar = T, f(b), f(ab)
        self.post_logvar = f(torch.log(torch.cat([post_var[1:2], post_var[1:]])))
        self.coef1, self.coef2 = f(b * ab_prev.sqrt() / (1 - ab)), f((1 - ab_prev) * (1 - b).sqrt() / (1 - ab))


def bc(v, t):  # gather per-sample scalar, broadcast over C, H, W
    return v[t][:, None, None, None]


def vb_term(s, x0, xt, t, eps, v):
    """guided-diffusion's _vb_terms_bpd for the learned-range variance, eps frozen (bits per dim)."""
    pred_x0 = xt / bc(s.abar, t).sqrt() - (1 / bc(s.abar, t) - 1).sqrt() * eps
    mean = bc(s.coef1, t) * pred_x0 + bc(s.coef2, t) * xt
    frac = (v + 1) / 2
    logvar = frac * bc(s.betas, t).log() + (1 - frac) * bc(s.post_logvar, t)
    true_mean, true_logvar = bc(s.coef1, t) * x0 + bc(s.coef2, t) * xt, bc(s.post_logvar, t)
    kl = 0.5 * (-1 + logvar - true_logvar + torch.exp(true_logvar - logvar) + (true_mean - mean) ** 2 * torch.exp(-logvar))
    kl = kl.mean(dim=(1, 2, 3)) / math.log(2.0)
    cdf = lambda z: 0.5 * (1 + torch.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))
    inv_std, cx = torch.exp(-0.5 * logvar), x0 - mean
    cdf_plus, cdf_min = cdf(inv_std * (cx + 1 / 255)), cdf(inv_std * (cx - 1 / 255))
    log_probs = torch.where(x0 < -0.999, cdf_plus.clamp(min=1e-12).log(),
                            torch.where(x0 > 0.999, (1 - cdf_min).clamp(min=1e-12).log(),
                                        (cdf_plus - cdf_min).clamp(min=1e-12).log()))
    nll = -log_probs.mean(dim=(1, 2, 3)) / math.log(2.0)
    return torch.where(t == 0, nll, kl)


def step_case(c, cfg, model, dev):
    """Returns [(name, fn, note)] for a whole-model case."""
    n, g = c["batch"], torch.Generator(device="cpu").manual_seed(0)
    shape = (n, cfg["in_channels"], cfg["image_size"], cfg["image_size"])
    tr = lambda x: x.to(dev)
    s = Schedule(dev)
    attn_note = f"{os.path.basename(c['config'])} b{n}; attention: {'F.scaled_dot_product_attention' if ATTN_IMPL == 'sdpa' and HAS_SDPA else 'einsum (guided-diffusion)'}"
    if c["op"] == "train_step":
        model.train()
        for p in model.parameters():
            p.requires_grad_(True)
        opt, impl = make_adamw(model.parameters(), dev)
        ncls, cin = cfg.get("num_classes"), cfg["in_channels"]
        learn_sigma = cfg["out_channels"] == 2 * cin

        def fn():
            x0 = torch.rand(shape, device=dev) * 2 - 1
            t = torch.randint(0, s.T, (n,), device=dev)
            y = torch.randint(0, ncls, (n,), device=dev) if ncls else None
            eps = torch.randn(shape, device=dev)
            ab = bc(s.abar, t)
            xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
            out = model(xt, t, y)
            loss = ((out[:, :cin] - eps) ** 2).mean(dim=(1, 2, 3))
            if learn_sigma:
                loss = loss + vb_term(s, x0, xt, t, out[:, :cin].detach(), out[:, cin:])
            loss.mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return [(c["name"], fn, f"{impl}; loss MSE{' + VB (learned range)' if learn_sigma else ''}; {attn_note}")]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    xt = tr(torch.randn(shape, generator=g))
    t = tr(torch.randint(0, 1000, (n,), generator=g))
    if c["op"] == "cfg_step":
        ncls, cin = cfg["num_classes"], cfg["in_channels"]
        y2 = tr(torch.cat([torch.randint(0, ncls - 1, (n,), generator=g), torch.full((n,), ncls - 1)]))
        x2, t2 = torch.cat([xt, xt]), torch.cat([t, t])

        @torch.no_grad()
        def cfg_fn():
            ec, eu = model(x2, t2, y2)[:, :cin].chunk(2)
            return ddim_cfg(xt, ec, eu, 3.0)

        @torch.no_grad()
        def fwd():
            return model(xt, t, y2[:n])
        # "<config>.cfg_sampling_step.bN" -> "<config>.forward.bN" (N as named, also under --quick)
        fwd_name = c["name"].replace("cfg_sampling_step", "forward")
        return [(c["name"], cfg_fn, f"forward at 2x{n} + DDIM/CFG elementwise; {attn_note}"),
                (fwd_name, fwd, f"plain eval forward at {n}, no_grad; {attn_note}")]
    if c["op"] == "classifier_gradient":
        y = tr(torch.randint(0, cfg["out_channels"], (n,), generator=g))
        idx = torch.arange(n, device=dev)

        def fn():
            x = xt.detach().requires_grad_(True)
            logp = torch.log_softmax(model(x, t), dim=-1)
            return torch.autograd.grad(logp[idx, y].sum(), x)[0]
        return [(c["name"], fn, attn_note)]
    raise ValueError(f"unknown op {c['op']}")


# ----------------------------------------------------------------------------------------------
def set_tf32(on):
    # Only the legacy flags: torch >= 2.9 also has *.fp32_precision, and mixing the two APIs raises.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


def main():
    global ATTN_IMPL
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=os.path.join(REPO, "bench", "cases.json"))
    ap.add_argument("--out", default="torch.json")
    ap.add_argument("--quick", action="store_true", help="use each case's 'quick' shapes")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--only", default=None, help="only cases whose name contains one of these comma-separated substrings")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 in matmul and cuDNN; names get '@tf32'")
    ap.add_argument("--both", action="store_true", help="fp32 set, then the gemm/conv/attention/step cases again with TF32")
    ap.add_argument("--check-params", action="store_true", help="only check the models against params.txt and exit")
    ap.add_argument("--attention", choices=["einsum", "sdpa"], default="einsum",
                    help="attention inside the models: guided-diffusion's einsum math (default) or F.scaled_dot_product_attention")
    ap.add_argument("--no-cudnn-benchmark", action="store_true", help="leave torch.backends.cudnn.benchmark False")
    ap.add_argument("--warmup", type=float, default=25, help="ms")
    ap.add_argument("--rep", type=float, default=100, help="ms")
    ap.add_argument("--min-reps", type=int, default=10, help="at least this many timed runs per case")
    a = ap.parse_args()
    ATTN_IMPL = a.attention
    cases = json.load(open(a.cases))
    wanted = lambda name: not a.only or any(w and w in name for w in a.only.split(","))
    os.chdir(REPO)  # config paths in cases.json are relative to the repository root

    if a.check_params:  # every config; otherwise only those this run builds
        configs = sorted(os.path.join("configs", f) for f in os.listdir("configs") if f.endswith(".json"))
    else:
        configs = sorted({dict(s, **(s.get("quick", {}) if a.quick else {}))["config"] for s in cases["steps"]
                          if wanted(s["name"])})
    ok = True
    for path in configs:
        ref = params_file(path)
        if ref is None:
            print(f"check-params {path}: no params.txt found, skipped")
            continue
        try:
            with torch.device("meta") if hasattr(torch.device, "__enter__") else _nullctx():
                errs = check_params(UNet(json.load(open(path))), ref)
        except Exception as e:  # noqa: BLE001
            errs = [_err(e)]
        ok &= not errs
        print(f"check-params {path} vs {os.path.relpath(ref)}: {'OK' if not errs else 'FAILED'}")
        for e in errs[:20]:
            print("   ", e)
    if a.check_params:
        sys.exit(0 if ok else 1)

    dev = torch.device(a.device)
    torch.backends.cudnn.benchmark = not a.no_cudnn_benchmark
    timer = Timer(dev, a.warmup, a.rep, a.min_reps)
    devname = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"device {devname}, torch {torch.__version__}, timer {timer.name}, cudnn.benchmark "
          f"{torch.backends.cudnn.benchmark}, model attention {ATTN_IMPL}{' (quick shapes)' if a.quick else ''}")
    all_cases = [(c, "kernel") for c in cases["kernels"]] + [(c, "step") for c in cases["steps"]]
    all_cases = [(c, k) for c, k in all_cases if wanted(c["name"])]
    passes = [False, True] if a.both else [a.tf32]
    results, models = [], {}

    def write():  # after every result, so a run killed by a time limit still leaves what it measured
        out = {"device": devname, "torch": torch.__version__, "tf32": bool(a.tf32), "both": bool(a.both),
               "quick": bool(a.quick), "timer": timer.name, "cudnn_benchmark": torch.backends.cudnn.benchmark,
               "model_attention": ATTN_IMPL, "results": results}
        with open(os.path.join(_cwd0, a.out), "w") as f:  # (an absolute --out stays absolute)
            json.dump(out, f, indent=1)
    print(f"{'name':58s} {'ms':>12s}  note")
    for tf32 in passes:
        set_tf32(tf32)
        suffix = "@tf32" if tf32 else ""
        for c, kind in all_cases:
            if a.both and tf32 and c["op"] not in ("gemm", "conv3x3", "conv3x3_pass", "attention", "train_step", "cfg_step", "classifier_gradient"):
                continue
            c = dict(c, **(c.get("quick", {}) if a.quick else {}))
            try:
                if kind == "kernel":
                    fn, note = kernel_case(c, dev)
                    jobs = [(c["name"], fn, note)]
                else:
                    if c["config"] not in models:
                        models.clear()  # one model on the device at a time
                        _free(dev)
                        torch.manual_seed(0)
                        with torch.device(dev) if hasattr(torch.device, "__enter__") else _nullctx():
                            models[c["config"]] = UNet(json.load(open(c["config"]))).to(dev)
                    jobs = step_case(c, json.load(open(c["config"])), models[c["config"]], dev)
                for name, fn, note in jobs:
                    try:
                        ms = timer(fn)
                        r = {"name": name + suffix, "ms": ms, "tf32": tf32}
                        if note:
                            r["note"] = note
                        print(f"{r['name']:58s} {ms:12.4f}  {note or ''}", flush=True)
                    except Exception as e:  # noqa: BLE001
                        r = {"name": name + suffix, "ms": None, "tf32": tf32, "error": _err(e)}
                        print(f"{r['name']:58s} {'ERROR':>12s}  {r['error']}", flush=True)
                    results.append(r)
                    write()
                    del fn
            except Exception as e:  # noqa: BLE001
                r = {"name": c["name"] + suffix, "ms": None, "tf32": tf32, "error": _err(e)}
                print(f"{r['name']:58s} {'ERROR':>12s}  {r['error']}", flush=True)
                results.append(r)
                write()
            jobs = fn = None
            _free(dev)
    write()
    print(f"wrote {a.out}: {sum(r['ms'] is not None for r in results)} timed, {sum(r['ms'] is None for r in results)} failed")


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _err(e):
    msg = f"{type(e).__name__}: {e}".strip().splitlines()
    return msg[0][:300] if msg else type(e).__name__


def _free(dev):
    import gc
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()


_cwd0 = os.getcwd()

if __name__ == "__main__":
    main()
