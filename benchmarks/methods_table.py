"""The methods table of the README from benchmarks/methods_study.sh's JSON lines.

  python benchmarks/methods_table.py RUNS_DIR/study.jsonl
Rows: raw pixels, then per encoder its random init and every method; columns: linear, kNN
k=20, 10-shot (mean +- std over 3 draws), fine-tune (MAE and its from-scratch baseline),
pretraining wall time.
"""
import collections
import json
import sys

METHODS = ("simclr", "byol", "mocov3", "barlow_twins", "vicreg", "simsiam", "dino", "mae")
NAMES = {"simclr": "SimCLR", "byol": "BYOL", "mocov3": "MoCo v3", "barlow_twins": "Barlow Twins",
         "vicreg": "VICReg", "simsiam": "SimSiam", "dino": "DINO", "mae": "MAE"}
ENCODERS = {"resnet18": "ResNet-18", "vit_tiny": "ViT-tiny"}


def cells(rows: list, prefix: str = "") -> dict:
  """{column: text} from one run's evaluation rows; prefix selects a baseline's keys."""
  out = {}
  for r in rows:
    if r["split"] == "linear" and prefix + "top1" in r:
      out["linear"] = f"{r[prefix + 'top1']:.3f}"
    if r["split"] == "knn" and prefix + "top1_k20" in r:
      out["knn"] = f"{r[prefix + 'top1_k20']:.3f}"
    if r["split"] == "fewshot" and prefix + "top1_10shot" in r:
      out["fewshot"] = f"{r[prefix + 'top1_10shot']:.3f} ± {r[prefix + 'top1_10shot_std']:.3f}"
    if r["split"] == "finetune" and prefix + "top1" in r:
      out["finetune"] = f"{r[prefix + 'top1']:.3f}"
    if r["split"] == "pretrain" and not prefix:
      out["seconds"] = f"{r['seconds']} s"
  return out


def table(lines: list) -> str:
  by_run = collections.defaultdict(list)
  for line in lines:
    by_run[line["run"]].append(line)
  columns = ("linear", "knn", "fewshot", "finetune", "seconds")
  out = ["| encoder | features | linear | kNN k=20 | 10-shot | fine-tune | pretraining |",
         "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]

  def row(encoder, name, values):
    out.append(f"| {encoder} | {name} | " + " | ".join(values.get(c, "") for c in columns) + " |")

  # The run of each encoder that carries the baselines (evaluated with --baselines=true).
  baseline_runs = {e: next((f"{m}_{e}" for m in METHODS
                            if any("random_init_top1" in r for r in by_run[f"{m}_{e}"])), None)
                   for e in ENCODERS}
  pixels_run = next((r for r in baseline_runs.values() if r), None)
  # MAE's fine-tuning ran with its baselines: training from scratch, and on raw pixels.
  finetuned = [r for r in by_run.get("mae_vit_tiny", []) if r["split"] == "finetune"]
  if pixels_run:
    row("—", "raw pixels", {**cells(by_run[pixels_run], "raw_pixels_"),
                            **cells(finetuned, "raw_pixels_")})
  for encoder, title in ENCODERS.items():
    if baseline_runs[encoder]:
      scratch = cells(finetuned, "random_init_") if encoder == "vit_tiny" else {}
      row(title, "random init", {**cells(by_run[baseline_runs[encoder]], "random_init_"),
                                 **scratch})
    for method in METHODS:
      if by_run.get(f"{method}_{encoder}"):
        row(title, NAMES[method], cells(by_run[f"{method}_{encoder}"]))
  return "\n".join(out)


if __name__ == "__main__":
  with open(sys.argv[1]) as f:
    print(table([json.loads(line) for line in f if line.strip().startswith("{")]))
