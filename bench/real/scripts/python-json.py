# A scripted interpreter workload: records built, serialised to JSON and
# parsed back, grouped and indexed (dicts, lists, sets, strings). Seeded, so
# the line it prints does not depend on the allocator.
import json
import random

r = random.Random(11)
words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randrange(3, 12)))
         for _ in range(5000)]
recs = []
for i in range(150000):
    recs.append({"id": i, "name": " ".join(r.choice(words) for _ in range(r.randrange(1, 6))),
                 "group": r.choice(words[:300]), "score": r.randrange(10**6) / 1000,
                 "tags": [r.choice(words) for _ in range(r.randrange(0, 8))],
                 "attrs": {r.choice(words): r.randrange(100) for _ in range(r.randrange(0, 5))}})
text = json.dumps(recs)
back = json.loads(text)
groups = {}
for x in back:
    groups.setdefault(x["group"], []).append(x)
summary = {g: {"n": len(v), "score": round(sum(x["score"] for x in v), 3),
               "tags": sorted({t for x in v for t in x["tags"]})[:20]} for g, v in groups.items()}
index = {}
for x in back:
    for t in x["tags"]:
        index.setdefault(t, set()).add(x["id"])
out = json.dumps(summary, sort_keys=True)
print(len(text), len(out), len(index), sum(len(s) for s in index.values()))
