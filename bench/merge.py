"""Merge several `kd bench` bench.json files (say the steps and the kernel cases, run apart) into one, for join.py
and fastest.py: the last file's header, every file's results in order. Missing files are skipped.

    python3 bench/merge.py OUT.json A.json B.json ...
"""
import json, os, sys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    parts = [json.load(open(p)) for p in sys.argv[2:] if os.path.exists(p)]
    if not parts:
        sys.exit("merge.py: none of the bench files exists")
    whole = dict(parts[-1])
    whole["results"] = [r for p in parts for r in p.get("results", [])]
    with open(sys.argv[1], "w") as f:
        json.dump(whole, f, indent=1)


if __name__ == "__main__":
    main()
