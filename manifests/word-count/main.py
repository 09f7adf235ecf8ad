"""word-count: counts the words of every text in its granted data folder."""
import collections
import os
import re

DATA = "/plugin/data"
counts = collections.Counter()
for name in sorted(os.listdir(DATA)):
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        words = re.findall(r"[a-z']+", f.read().lower())
    counts.update(words)
    print(f"{name}: {len(words)} words")
print("top words:", ", ".join(f"{w} ({n})" for w, n in counts.most_common(5)))
