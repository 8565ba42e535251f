"""Functional reference of the official RMT-PPAD eval forward, written against official key names.

Independent of ppad_core's modules: it reads a flat official state dict (`model.N...`) and applies
the operations docs/model.md describes with torch.nn.functional, including the official
sin-cos embedding formula and the official `while size < image width` upsampling loop. Square
inputs only (the official decoder's own limitation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EPS = 1e-3


def _bn(x, w, p):
    return F.batch_norm(
        x, w[p + ".running_mean"], w[p + ".running_var"], w[p + ".weight"], w[p + ".bias"], False, 0.0, EPS
    )


def _conv_bn(x, w, p, stride=1, pad=None, act=None):
    weight = w[p + ".conv.weight"]
    k = weight.shape[-1]
    groups = x.shape[1] // weight.shape[1]
    y = _bn(F.conv2d(x, weight, None, stride, k // 2 if pad is None else pad, 1, groups), w, p + ".bn")
    return act(y) if act else y


def _linear(x, w, p):
    return F.linear(x, w[p + ".weight"], w[p + ".bias"])


def _layer_norm(x, w, p):
    return F.layer_norm(x, (x.shape[-1],), w[p + ".weight"], w[p + ".bias"], 1e-5)


def _mlp(x, w, p, layers):
    for i in range(layers):
        x = _linear(x, w, f"{p}.layers.{i}")
        if i < layers - 1:
            x = F.relu(x)
    return x


def _mha(q, k, v, w, p, heads):
    dim = q.shape[-1]
    wq, wk, wv = w[p + ".in_proj_weight"].chunk(3)
    bq, bk, bv = w[p + ".in_proj_bias"].chunk(3)

    def split(t):
        return t.view(t.shape[0], t.shape[1], heads, dim // heads).transpose(1, 2)

    q, k, v = split(F.linear(q, wq, bq)), split(F.linear(k, wk, bk)), split(F.linear(v, wv, bv))
    attn = (q @ k.transpose(-1, -2) / math.sqrt(dim // heads)).softmax(-1)
    out = (attn @ v).transpose(1, 2).reshape(q.shape[0], -1, dim)
    return _linear(out, w, p + ".out_proj")


def _hgstem(x, w, p):
    x = _conv_bn(x, w, p + ".stem1", 2, act=F.relu)
    x = F.pad(x, [0, 1, 0, 1])
    x2 = _conv_bn(x, w, p + ".stem2a", 1, 0, F.relu)
    x2 = _conv_bn(F.pad(x2, [0, 1, 0, 1]), w, p + ".stem2b", 1, 0, F.relu)
    x = torch.cat([F.max_pool2d(x, 2, 1, ceil_mode=True), x2], 1)
    return _conv_bn(_conv_bn(x, w, p + ".stem3", 2, act=F.relu), w, p + ".stem4", act=F.relu)


def _hgblock(x, w, p, units, light, shortcut):
    ys = [x]
    for i in range(units):
        if light:
            t = _conv_bn(ys[-1], w, f"{p}.m.{i}.conv1")
            ys.append(_conv_bn(t, w, f"{p}.m.{i}.conv2", act=F.relu))
        else:
            ys.append(_conv_bn(ys[-1], w, f"{p}.m.{i}", act=F.relu))
    y = _conv_bn(_conv_bn(torch.cat(ys, 1), w, p + ".sc", act=F.relu), w, p + ".ec", act=F.relu)
    return y + x if shortcut and x.shape[1] == y.shape[1] else y


def _repc3(x, w, p, depth):
    y = _conv_bn(x, w, p + ".cv1", act=F.silu)
    for i in range(depth):
        y = F.silu(_conv_bn(y, w, f"{p}.m.{i}.conv1") + _conv_bn(y, w, f"{p}.m.{i}.conv2"))
    return y + _conv_bn(x, w, p + ".cv2", act=F.silu)


def _official_pos_embed(w_, h_, dim, temperature=1e4):
    grid_w, grid_h = torch.meshgrid(
        torch.arange(w_, dtype=torch.float32), torch.arange(h_, dtype=torch.float32), indexing="ij"
    )
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    out_w = grid_w.flatten()[..., None] @ omega[None]
    out_h = grid_h.flatten()[..., None] @ omega[None]
    return torch.cat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], 1)[None]


def _aifi(x, w, p, heads):
    b, c, h, wd = x.shape
    tokens = x.flatten(2).permute(0, 2, 1)
    q = tokens + _official_pos_embed(wd, h, c).to(tokens.dtype)
    tokens = _layer_norm(tokens + _mha(q, q, tokens, w, p + ".ma", heads), w, p + ".norm1")
    ffn = _linear(F.gelu(_linear(tokens, w, p + ".fc1")), w, p + ".fc2")
    tokens = _layer_norm(tokens + ffn, w, p + ".norm2")
    return tokens.permute(0, 2, 1).reshape(b, c, h, wd)


def _gca(s, w, head, task, level):
    a = f"{head}.task_adapter_{task}.{level}"
    t = F.silu(_bn(F.conv2d(s, w[a + ".conv1.0.weight"]), w, a + ".conv1.1"))
    t = F.conv2d(t, w[a + ".conv3.0.weight"], padding=1, groups=t.shape[1])
    t = F.silu(_bn(F.conv2d(t, w[a + ".conv3.1.weight"]), w, a + ".conv3.2"))
    g = f"{head}.gate_{task}.{level}"
    x = torch.cat([s, t], 1)
    c = s.shape[1]
    gc = F.adaptive_avg_pool2d(x, 1)
    gc = F.relu(
        _bn(F.conv2d(gc, w[g + ".channel_att.1.weight"], w[g + ".channel_att.1.bias"]), w, g + ".channel_att.2")
    )
    gc = torch.sigmoid(F.conv2d(gc, w[g + ".channel_att.4.weight"], w[g + ".channel_att.4.bias"]))
    gs = F.conv2d(x, w[g + ".spatial_att.0.weight"], w[g + ".spatial_att.0.bias"], padding=1, groups=2 * c)
    gs = F.relu(_bn(gs, w, g + ".spatial_att.1"))
    gs = torch.sigmoid(F.conv2d(gs, w[g + ".spatial_att.3.weight"], w[g + ".spatial_att.3.bias"]))
    al = F.conv2d(x, w[g + ".alpha_net.0.weight"], w[g + ".alpha_net.0.bias"], padding=1, groups=c)
    al = F.adaptive_avg_pool2d(F.relu(_bn(al, w, g + ".alpha_net.1")), 1)
    al = torch.sigmoid(
        _bn(F.conv2d(al, w[g + ".alpha_net.4.weight"], w[g + ".alpha_net.4.bias"]), w, g + ".alpha_net.5")
    )
    gate = (al * gc + (1 - al) * gs).clamp(0.05, 0.95)
    return s + gate * (t - s)


def _seg_head(feats, w, p, image_width):
    size = feats[0].shape[-2:]
    maps = []
    for name, f in zip(("proj_s3", "proj_s4", "proj_s5"), feats):
        m = F.conv2d(f, w[f"{p}.{name}.weight"], w[f"{p}.{name}.bias"])
        maps.append(m if m.shape[-2:] == size else F.interpolate(m, size=size, mode="bilinear", align_corners=False))
    stacked = torch.stack(maps, 1)
    weights = w[p + ".task_weights"].softmax(1)
    per_task = torch.stack([(weights[t].view(1, 3, 1, 1, 1) * stacked).sum(1) for t in range(weights.shape[0])], 1)
    b, t, c, h, wd = per_task.shape
    x = per_task.reshape(b * t, c, h, wd)
    while x.shape[-1] < image_width:
        x = F.conv_transpose2d(x, w[p + ".deconv_upsample.weight"], w[p + ".deconv_upsample.bias"], stride=2, padding=1)
    x = F.relu(_bn(F.conv2d(x, w[p + ".refine.0.weight"], w[p + ".refine.0.bias"], padding=1), w, p + ".refine.1"))
    x = F.conv2d(x, w[p + ".refine.3.weight"], w[p + ".refine.3.bias"])
    return x.reshape(b, t, x.shape[-2], x.shape[-1])


def _anchors(shapes, dtype, grid_size=0.05, eps=1e-2):
    anchors = []
    for i, (h, w_) in enumerate(shapes):
        gy, gx = torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w_, dtype=dtype), indexing="ij")
        xy = (torch.stack([gx, gy], -1).unsqueeze(0) + 0.5) / torch.tensor([w_, h], dtype=dtype)
        wh = torch.ones_like(xy) * grid_size * (2.0**i)
        anchors.append(torch.cat([xy, wh], -1).view(-1, h * w_, 4))
    anchors = torch.cat(anchors, 1)
    valid = ((anchors > eps) & (anchors < 1 - eps)).all(-1, keepdim=True)
    return torch.log(anchors / (1 - anchors)).masked_fill(~valid, float("inf")), valid


def _inverse_sigmoid(x, eps=1e-5):
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def _deform_attn(query, ref, memory, shapes, w, p, heads, points):
    b, q, d = query.shape
    levels = len(shapes)
    value = _linear(memory, w, p + ".value_proj").view(b, -1, heads, d // heads)
    offsets = _linear(query, w, p + ".sampling_offsets").view(b, q, heads, levels, points, 2)
    attn = _linear(query, w, p + ".attention_weights").view(b, q, heads, levels * points).softmax(-1)
    attn = attn.view(b, q, heads, levels, points)
    loc = ref[:, :, None, None, None, :2] + offsets / points * ref[:, :, None, None, None, 2:] * 0.5
    out = query.new_zeros(b, q, heads, d // heads)
    start = 0
    for lvl, (h, w_) in enumerate(shapes):
        v = value[:, start : start + h * w_].permute(0, 2, 3, 1).reshape(b * heads, d // heads, h, w_)
        start += h * w_
        grid = (2 * loc[:, :, :, lvl] - 1).permute(0, 2, 1, 3, 4).reshape(b * heads, q, points, 2)
        sampled = F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        sampled = sampled.view(b, heads, d // heads, q, points).permute(0, 3, 1, 2, 4)
        out = out + (sampled * attn[:, :, :, lvl, None, :]).sum(-1)
    return _linear(out.reshape(b, q, d), w, p + ".output_proj")


def _detect(det_feats, w, p, cfg):
    shapes = [(f.shape[2], f.shape[3]) for f in det_feats]
    memory = torch.cat([f.flatten(2).permute(0, 2, 1) for f in det_feats], 1)
    b = memory.shape[0]
    anchors, valid = _anchors(shapes, memory.dtype)
    feats = _layer_norm(_linear(valid * memory, w, p + ".enc_output.0"), w, p + ".enc_output.1")
    scores = _linear(feats, w, p + ".enc_score_head")
    top = torch.topk(scores.max(-1).values, cfg.num_queries, dim=1).indices
    queries = torch.stack([feats[i, top[i]] for i in range(b)])
    ref = torch.stack([anchors[0, top[i]] for i in range(b)]) + _mlp(queries, w, p + ".enc_bbox_head", 3)
    ref = ref.sigmoid()
    for i in range(cfg.decoder_layers):
        lp = f"{p}.decoder.layers.{i}"
        pos = _mlp(ref, w, p + ".query_pos_head", 2)
        qk = queries + pos
        queries = _layer_norm(queries + _mha(qk, qk, queries, w, lp + ".self_attn", cfg.num_heads), w, lp + ".norm1")
        cross = _deform_attn(queries + pos, ref, memory, shapes, w, lp + ".cross_attn", cfg.num_heads, cfg.num_points)
        queries = _layer_norm(queries + cross, w, lp + ".norm2")
        ffn = _linear(F.relu(_linear(queries, w, lp + ".linear1")), w, lp + ".linear2")
        queries = _layer_norm(queries + ffn, w, lp + ".norm3")
        ref = torch.sigmoid(_mlp(queries, w, f"{p}.dec_bbox_head.{i}", 3) + _inverse_sigmoid(ref))
    last = cfg.decoder_layers - 1
    return ref, torch.sigmoid(_linear(queries, w, f"{p}.dec_score_head.{last}"))


def reference_forward(w: dict[str, torch.Tensor], config, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Official eval outputs (boxes, scores, seg_logits) of the state dict `w` for `config`'s topology."""
    x = _hgstem(images, w, "model.0")
    idx, outputs = 1, []
    for stage in config.backbone.stages:
        if stage.downsample:
            x = _conv_bn(x, w, f"model.{idx}", 2)
            idx += 1
        for blk in range(stage.blocks):
            x = _hgblock(x, w, f"model.{idx}", stage.units, stage.light, blk > 0)
            idx += 1
        outputs.append(x)
    s3, s4, s5 = outputs[1:]
    e, depth = config.encoder, config.encoder.repc3_depth
    y5 = _conv_bn(
        _aifi(_conv_bn(s5, w, f"model.{idx}"), w, f"model.{idx + 1}", e.num_heads), w, f"model.{idx + 2}", act=F.silu
    )
    up = F.interpolate(y5, scale_factor=2.0, mode="nearest")
    y4 = _repc3(torch.cat([up, _conv_bn(s4, w, f"model.{idx + 4}")], 1), w, f"model.{idx + 6}", depth)
    y4 = _conv_bn(y4, w, f"model.{idx + 7}", act=F.silu)
    up = F.interpolate(y4, scale_factor=2.0, mode="nearest")
    p3 = _repc3(torch.cat([up, _conv_bn(s3, w, f"model.{idx + 9}")], 1), w, f"model.{idx + 11}", depth)
    p4 = _repc3(torch.cat([_conv_bn(p3, w, f"model.{idx + 12}", 2, act=F.silu), y4], 1), w, f"model.{idx + 14}", depth)
    p5 = _repc3(torch.cat([_conv_bn(p4, w, f"model.{idx + 15}", 2, act=F.silu), y5], 1), w, f"model.{idx + 17}", depth)
    head = f"model.{idx + 18}"
    shared = [
        _bn(F.conv2d(f, w[f"{head}.input_proj.{i}.0.weight"]), w, f"{head}.input_proj.{i}.1")
        for i, f in enumerate((p3, p4, p5))
    ]
    det = [_gca(s, w, head, "det", i) for i, s in enumerate(shared)]
    seg = [_gca(s, w, head, "seg", i) for i, s in enumerate(shared)]
    boxes, scores = _detect(det, w, head, config.head)
    return {"boxes": boxes, "scores": scores, "seg_logits": _seg_head(seg, w, f"{head}.seg_head", images.shape[-1])}
