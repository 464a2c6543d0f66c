"""A table of 300,000 rows built, written as JSON, dropped, read back and
indexed: memory that rises in steps, falls, and rises again (the
profiling example of the README, bench/prof/example.sh)."""
import json

rows = [{"id": i, "name": "user%d" % i, "tags": [str(j) for j in range(i % 7)]}
        for i in range(300000)]
text = json.dumps(rows)
del rows
back = json.loads(text)
del text
index = {r["name"]: r for r in back}
print(len(index), "rows")
