"""The PyTorch peers: what a researcher would otherwise train with, at the same shapes.

Benchmark-only (the `bench` extra): ssl_jax itself never imports torch or transformers.
Rows follow jax_rows.py: `run(n)`, `units_per_step`, `unit`, `flops_per_step`, `extra`.
"""
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmarks.common import SIMCLR_TEMPERATURE

try:  # only the GPT-2 rows need it
  import transformers
except ImportError:
  transformers = None


def _row(step, units_per_step, unit, flops_per_step, extra=None):
  row = types.SimpleNamespace(units_per_step=units_per_step, unit=unit,
                              flops_per_step=flops_per_step, extra=extra or {})

  def run(n):
    for _ in range(n):
      step()

  row.run = run
  run(2)  # warm (and for torch.compile: compile)
  return row


def gpt2_row(layers, heads, width, seq, batch, vocab, flops_per_token, compile=False,
             autocast=False):
  """Hugging Face GPT-2 (SDPA attention, tanh GELU, tied embeddings), AdamW, clipping.
  autocast: the forward pass under torch.autocast bfloat16 (float32 weights and optimizer)."""
  if transformers is None:
    raise ImportError("transformers is not installed (pip install -e .[bench])")
  from transformers import GPT2Config, GPT2LMHeadModel
  transformers.utils.logging.set_verbosity_error()
  torch.manual_seed(0)
  cfg = GPT2Config(n_layer=layers, n_head=heads, n_embd=width, n_positions=seq, vocab_size=vocab,
                   resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=vocab - 1,
                   eos_token_id=vocab - 1)
  model = GPT2LMHeadModel(cfg).train()
  decay = [p for p in model.parameters() if p.ndim >= 2]
  no_decay = [p for p in model.parameters() if p.ndim < 2]
  opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                           {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.95))
  tokens = torch.randint(0, vocab, (batch, seq + 1), generator=torch.Generator().manual_seed(0))
  inputs, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

  def loss_of(inputs, targets):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
      logits = model(input_ids=inputs).logits
    return F.cross_entropy(logits.reshape(-1, vocab).float(), targets.reshape(-1))

  loss_fn = torch.compile(loss_of) if compile else loss_of

  def step():
    loss = loss_fn(inputs, targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)

  return _row(step, batch * seq, "tokens", flops_per_token * batch * seq,
              {"attn": model.config._attn_implementation, "threads": torch.get_num_threads()})


class _BasicBlock(nn.Module):
  def __init__(self, cin, cout, stride):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout)
    self.short = None
    if stride != 1 or cin != cout:
      self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

  def forward(self, x):
    h = F.relu(self.bn1(self.conv1(x)))
    h = self.bn2(self.conv2(h))
    return F.relu(h + (x if self.short is None else self.short(x)))


class _ResNet18Cifar(nn.Module):
  """ResNet-18 with the CIFAR stem (3x3 conv, no max-pool) and SimCLR's 2-layer projector."""

  def __init__(self, width=64, out_dim=128):
    super().__init__()
    layers = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    cin = width
    for stage, stride in enumerate((1, 2, 2, 2)):
      cout = width * 2 ** stage
      layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
      cin = cout
    self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    self.head = nn.Sequential(nn.Linear(cin, cin, bias=False), nn.BatchNorm1d(cin), nn.ReLU(),
                              nn.Linear(cin, out_dim))

  def forward(self, x):
    return self.head(self.encoder(x))


def _nt_xent(z1, z2, temperature):
  """ssl_jax's objectives/simclr.py nt_xent, in torch."""
  z = F.normalize(torch.cat([z1, z2]), dim=-1)
  n = z1.shape[0]
  logits = z @ z.t() / temperature
  logits.fill_diagonal_(-1e9)
  targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
  return F.cross_entropy(logits, targets)


def simclr_row(batch, image_size=32, width=64, flops_per_step=0.0):
  """The same network and loss; views by random crop (pad 4) and flip only, so the peer
  does less augmentation work than ssl_jax's step (full SimCLR colour jitter on device)."""
  torch.manual_seed(0)
  model = _ResNet18Cifar(width).train().to(memory_format=torch.channels_last)
  opt = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9, weight_decay=1e-6)
  images = torch.randint(0, 256, (batch, 3, image_size, image_size), dtype=torch.uint8)

  def view(x):
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    i, j = torch.randint(0, 9, (2,))
    crop = padded[:, :, i:i + image_size, j:j + image_size]
    flip = torch.rand(x.shape[0]) < 0.5
    return torch.where(flip[:, None, None, None], crop.flip(3), crop)

  def step():
    x = images.float() / 127.5 - 1.0
    z = model(torch.cat([view(x), view(x)]).contiguous(memory_format=torch.channels_last))
    loss = _nt_xent(z[:batch], z[batch:], SIMCLR_TEMPERATURE)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)

  return _row(step, batch, "images", flops_per_step, {"threads": torch.get_num_threads()})


def matmul_row(n=2048, dtype="float32"):
  dt = getattr(torch, dtype)
  a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
  return _row(lambda: a @ b, 2 * n ** 3, "flops", 2 * n ** 3)
