"""README tables from seed studies (ssl_jax.sweep --protocols workdirs), with intervals.

  python benchmarks/study_table.py transfer|methods|two_tower RUNS_DIR [--keep DIR]
      the tables of benchmarks/transfer_study.sh, methods_study.sh, two_tower_study.sh;
      --keep copies what the tables read (each of its studies' sweep.json, per seed run.json and
      evaluations/) to DIR, so they can be printed again without the runs (docs/studies/).
  python benchmarks/study_table.py --write FILE...
      rewrites every marked table in the files from the kept studies its marker names:
      <!-- NAME table(s): benchmarks/study_table.py NAME DIR --> ... <!-- end of NAME table(s) -->

Each cell: mean ± std over seeds, then the 95% interval that resamples seeds and test items
together. A method's cell is bold only where ssl_jax.sweep's comparison (the same bootstrap,
paired over test items) finds it higher than every baseline of its column, p < 0.05. The
caption names the host and the date the runs were made, and the number of seeds.

A table is a list of columns (evaluation label, metric) and rows (title, study, the metric's
prefix: "" for the pretrained encoder, "random_init_" or the raw-input name for a baseline).
A row's study may differ per column: {evaluation label: study}, "*" for the others.
"""
import json
import os
import re
import sys

from ssl_jax import study
from ssl_jax.errors import ConfigError

# (title, study or {evaluation label: study}, prefix, is a baseline)
Row = tuple[str, str | dict, str, bool]

TEXT_ROWS: list[Row] = [
    ("bag of tokens", "gpt", "bag_of_tokens_", True),
    ("random-init GPT (4 x 128)", "gpt", "random_init_", True),
    ("random-init BERT (4 x 128)", "bert", "random_init_", True),
    ("GPT, next-token (`gpt_tiny`)", "gpt", "", False),
    ("BERT, masked LM (`bert_tiny`)", "bert", "", False),
]
TABLES = {
    "transfer": [
        ("text: 8 stdlib packages", TEXT_ROWS,
         [("linear", "linear", "top1"), ("fine-tune", "finetune", "top1")]),
        ("text: scikit-learn subpackages (never seen in pretraining)", TEXT_ROWS,
         [("linear", "linear@packages:sklearn", "top1"),
          ("fine-tune", "finetune@packages:sklearn", "top1")]),
        ("digits (360 test images)", [
            ("raw pixels", "simclr", "raw_pixels_", True),
            ("random-init ResNet-18", "simclr", "random_init_", True),
            ("SimCLR (`simclr_digits`)", "simclr", "", False),
            ("BYOL (`byol_digits`)", "byol", "", False)],
         [("linear", "linear", "top1"), ("kNN k=20", "knn", "top1_k20"),
          ("10-shot", "fewshot", "top1_10shot")]),
    ],
}
METHODS = {"simclr": "SimCLR", "byol": "BYOL", "mocov3": "MoCo v3", "barlow_twins": "Barlow Twins",
           "vicreg": "VICReg", "simsiam": "SimSiam", "dino": "DINO", "mae": "MAE"}
TABLES["methods"] = [(
    "encoder, features (360 test digits)",
    [("raw pixels", {"finetune": "mae_vit_tiny", "*": "simclr_resnet18"}, "raw_pixels_", True),
     ("ResNet-18, random init", "simclr_resnet18", "random_init_", True)]
    + [(f"ResNet-18, {name}", f"{m}_resnet18", "", False) for m, name in METHODS.items()
       if m != "mae"]
    + [("ViT-tiny, random init (fine-tune: from scratch)",
        {"finetune": "mae_vit_tiny", "*": "simclr_vit_tiny"}, "random_init_", True)]
    + [(f"ViT-tiny, {name}", f"{m}_vit_tiny", "", False) for m, name in METHODS.items()],
    [("linear", "linear", "top1"), ("kNN k=20", "knn", "top1_k20"),
     ("10-shot", "fewshot", "top1_10shot"), ("fine-tune", "finetune", "top1")])]
_TWO_TOWER_COLUMNS = [(f"{side} {short}", "retrieval", f"{key}{metric}")
                      for key, side in (("text_to_code_", "docstring -> code"),
                                        ("code_to_text_", "code -> docstring"))
                      for metric, short in (("recall@1", "R@1"), ("recall@10", "R@10"),
                                            ("mrr", "MRR"))]
TABLES["two_tower"] = [(
    "model (336 held-out pairs, each ranked against all)",
    [("TF-IDF (bag of words, IDF from the training split)", "siglip", "tfidf_", True),
     ("random init (the SigLIP towers)", "siglip", "random_init_", True),
     ("CLIP", "clip", "", False), ("SigLIP", "siglip", "", False),
     ("SigLIP, text tower from the BERT run", "siglip_bert", "", False),
     ("SigLIP, sentencepiece tokens (4,096) instead of bytes", "siglip_sp", "", False),
     ("SigLIP, learning rate 1e-3 instead of 3e-4", "siglip_lr", "", False)],
    _TWO_TOWER_COLUMNS)]


def _study_of(row_study, label: str) -> str:
  if isinstance(row_study, str):
    return row_study
  return row_study.get(label, row_study["*"])


def cell(estimates) -> str:
  import numpy as np
  from ssl_jax.evaluate import uncertainty
  values = [float(e) for e in estimates]
  std = np.std(values, ddof=1) if len(values) > 1 else 0.0
  low, high = uncertainty.pooled(estimates)
  return f"{np.mean(values):.3f} ± {std:.3f} [{low:.3f}, {high:.3f}]"


def caption(runs: str, names: set) -> str:
  """Host, date and seeds of the studies, from their run.json and sweep.json files."""
  hosts, dates, seeds = set(), set(), set()
  for name in sorted(names):
    summary = os.path.join(runs, name, "sweep.json")
    recorded = json.load(open(summary))
    ran = recorded["seeds"]
    seeds.add(len(ran))
    # A file's time changes with every clone, so only a recorded date is named.
    dates.add(recorded.get("date", ""))
    for s in ran:
      cpu = json.load(open(os.path.join(runs, name, f"seed_{s}", "run.json"))).get("cpu", {})
      hosts.add(f"{cpu.get('cores', '?')}-core {cpu.get('kind', 'unknown CPU')}")
  known = sorted(d for d in dates if d)
  when = " to ".join(known[::max(len(known) - 1, 1)]) or "date not recorded"
  if known and "" in dates:
    when += " (some dates not recorded)"
  return (f"{', '.join(sorted(hosts))}, {when}; "
          f"{' or '.join(str(n) for n in sorted(seeds))} seeds per row")


def render(runs: str, name: str) -> str:
  out = []
  used = set()
  loaded = {}

  def estimates(study_name, label, metric):
    if study_name not in loaded:
      try:
        loaded[study_name] = study.load_study(os.path.join(runs, study_name))[1]
      except ConfigError:  # not run (yet): its cells stay empty
        loaded[study_name] = {}
    found = study.estimates_of(loaded[study_name], f"{label}/{metric}")
    if found:
      used.add(study_name)
    return found

  for title, rows, columns in TABLES[name]:
    # Rows and columns not measured (yet) are left out; a table with neither, entirely.
    rows = [r for r in rows if any(estimates(_study_of(r[1], label), label, r[2] + m)
                                   for _, label, m in columns)]
    columns = [c for c in columns if any(estimates(_study_of(s, c[1]), c[1], p + c[2])
                                         for _, s, p, _ in rows)]
    if not rows:
      continue
    out.append("| " + title + " | " + " | ".join(c[0] for c in columns) + " |")
    out.append("| --- |" + " ---: |" * len(columns))
    for row_title, study_name, prefix, baseline in rows:
      cells = []
      for _, label, metric in columns:
        mine = estimates(_study_of(study_name, label), label, prefix + metric)
        if not mine:
          cells.append("")
          continue
        text = cell(mine)
        if not baseline and _beats_every_baseline(mine, rows, label, metric, estimates):
          text = f"**{text}**"
        cells.append(text)
      out.append(f"| {row_title} | " + " | ".join(cells) + " |")
    out.append("")
  if not used:
    return f"No study in {runs} has these evaluations yet."
  return (f"Measured on {caption(runs, used)}. Each cell: mean ± std over the seeds "
          "[95% interval, resampling seeds and test items]; bold: above every baseline of its "
          "column by the bootstrap test (p < 0.05).\n\n" + "\n".join(out))


def _beats_every_baseline(mine, rows, label, metric, estimates) -> bool:
  for _, study_name, prefix, baseline in rows:
    theirs = estimates(_study_of(study_name, label), label, prefix + metric) if baseline \
        else None
    if theirs:
      result = study.compare(mine, theirs)
      if not (result["real"] and result["difference"] > 0):
        return False
  return True


_MACHINE_ONLY = ("command", "host")  # run.json fields that name this machine's paths


def _portable(path: str) -> str:
  """An absolute path as its last part ("packages:/x/y/sklearn" -> "packages:sklearn")."""
  kind, sep, where = path.rpartition(":") if ":" in path else ("", "", path)
  if os.path.isabs(where):
    where = os.path.basename(where.rstrip("/"))
  return f"{kind}{sep}{where}"


def _copy_json(src: str, dst: str, edit):
  with open(src) as f:
    data = json.load(f)
  with open(dst, "w") as f:
    json.dump(edit(data), f)


def _evaluation(saved: dict) -> dict:
  options = saved.get("options") or {}
  for key in ("dataset", "data_source", "data_dir"):
    if isinstance(options.get(key), str):
      options[key] = _portable(options[key])
  return saved


def studies(name: str) -> set:
  """The studies a table reads."""
  found = set()
  for _, rows, _ in TABLES[name]:
    for _, row_study, _, _ in rows:
      found |= {row_study} if isinstance(row_study, str) else set(row_study.values())
  return found


def keep(runs: str, out: str, table: str):
  """Copies the table's studies (each one's sweep.json and its seeds' run.json and
  evaluations/) to out, with this machine's paths left out (run.json's command and host;
  data paths as last parts)."""
  for name in sorted(studies(table)):
    summary = os.path.join(runs, name, "sweep.json")
    if not os.path.isfile(summary):
      continue
    os.makedirs(os.path.join(out, name), exist_ok=True)
    _copy_json(summary, os.path.join(out, name, "sweep.json"), lambda summary: summary)
    for seed in json.load(open(summary))["seeds"]:
      src, dst = os.path.join(runs, name, f"seed_{seed}"), os.path.join(out, name, f"seed_{seed}")
      os.makedirs(os.path.join(dst, "evaluations"), exist_ok=True)
      _copy_json(os.path.join(src, "run.json"), os.path.join(dst, "run.json"),
                 lambda run: {k: v for k, v in run.items() if k not in _MACHINE_ONLY})
      evaluations = os.path.join(src, "evaluations")
      for file in sorted(os.listdir(evaluations)) if os.path.isdir(evaluations) else []:
        _copy_json(os.path.join(evaluations, file), os.path.join(dst, "evaluations", file),
                   _evaluation)


MARKED = re.compile(r"(<!-- (\w+) tables?: benchmarks/study_table\.py \2 (\S+) -->\n)"
                    r"(.*?)(<!-- end of \2 tables? -->)", re.DOTALL)


def marked(text: str) -> list[tuple[str, str, str]]:
  """(table name, studies folder, current body) of each marked table in a text."""
  return [(m[2], m[3], m[4]) for m in MARKED.finditer(text)]


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def marked_body(name: str, folder: str, rendered: dict) -> str:
  """A marked table's body, printed from the studies in folder (relative to the project
  root); rendered caches them by (name, folder)."""
  if (name, folder) not in rendered:
    if not os.path.isdir(os.path.join(ROOT, folder)):
      raise ConfigError(f"the {name} table's studies are not in {folder}")
    rendered[name, folder] = render(os.path.join(ROOT, folder), name).rstrip() + "\n"
  return rendered[name, folder]


def write(path: str, rendered: dict | None = None) -> int:
  """Rewrites the marked tables of a file; returns how many. rendered: see marked_body."""
  text = open(path).read()
  rendered = {} if rendered is None else rendered

  def table(match):
    return match[1] + marked_body(match[2], match[3], rendered) + match[5]

  new, count = MARKED.subn(table, text)
  if new != text:
    with open(path, "w") as f:
      f.write(new)
  return count


if __name__ == "__main__":
  args = sys.argv[1:]
  if args[:1] == ["--write"] and len(args) > 1:
    tables = {}
    for path in args[1:]:
      try:
        print(f"{path}: {write(path, tables)} tables")
      except (ConfigError, OSError) as e:
        sys.exit(f"study_table: {e}")
    sys.exit(0)
  if len(args) not in (2, 4) or args[0] not in TABLES or (len(args) == 4 and args[2] != "--keep"):
    sys.exit(f"usage: python benchmarks/study_table.py {'|'.join(TABLES)} RUNS_DIR [--keep DIR]"
             "\n       python benchmarks/study_table.py --write FILE...")
  if len(args) == 4:
    keep(args[1], args[3], args[0])
  print(render(args[1], args[0]))
