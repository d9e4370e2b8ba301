"""The two-tower table of the README from benchmarks/two_tower_study.sh's JSON lines.

  python benchmarks/two_tower_table.py RUNS_DIR/study.jsonl
Rows: TF-IDF and random init (baselines of the first evaluated run), then each pretrained
run; columns: recall@1, recall@10 and MRR over the held-out pairs, docstring -> code and
code -> docstring, and the pretraining wall time.
"""
import json
import sys

ROWS = (("tfidf", "TF-IDF (bag of words, IDF from the training split)"),
        ("random_init", "random init (the SigLIP towers)"),
        ("clip", "CLIP"), ("siglip", "SigLIP"),
        ("siglip_bert", "SigLIP, text tower from the BERT run"),
        ("siglip_sp", "SigLIP, sentencepiece tokens (4,096) instead of bytes"),
        ("siglip_lr", "SigLIP, learning rate 1e-3 instead of 3e-4"))
DIRECTIONS = (("text_to_code_", "docstring -> code"), ("code_to_text_", "code -> docstring"))
METRICS = (("recall@1", "R@1"), ("recall@10", "R@10"), ("mrr", "MRR"))


def table(lines: list) -> str:
  evals = {r["run"]: r for r in lines if r.get("split") == "retrieval" and "error" not in r}
  seconds = {r["run"]: r["seconds"] for r in lines if r.get("split") == "pretrain"}
  first = next(iter(evals.values()), {})
  head = " | ".join(f"{d} {m}" for _, d in DIRECTIONS for _, m in METRICS)
  out = [f"| model | {head} | pretraining |", "|---" * (2 + len(DIRECTIONS) * len(METRICS)) + "|"]
  for run, name in ROWS:
    if run in ("tfidf", "random_init"):
      row, prefix, wall = first, run + "_", "-"
    else:
      row, prefix = evals.get(run), ""
      wall = f"{seconds[run]} s" if run in seconds else "-"
      if run == "siglip_bert" and run in seconds and "bert" in seconds:
        wall += f" (+ BERT {seconds['bert']} s)"
    if not row or f"{prefix}text_to_code_mrr" not in row:
      continue
    cells = [f"{row[prefix + d + m]:.3f}" for d, _ in DIRECTIONS for m, _ in METRICS]
    out.append(f"| {name} | " + " | ".join(cells) + f" | {wall} |")
  pairs = int(first.get("pairs", 0))
  return "\n".join(out) + f"\n\n{pairs} held-out pairs, each ranked against all {pairs}."


if __name__ == "__main__":
  with open(sys.argv[1]) as f:
    print(table([json.loads(line) for line in f if line.strip()]))
