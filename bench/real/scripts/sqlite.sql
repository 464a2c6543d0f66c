-- A database session for the sqlite3 shell: 200,000 rows inserted, three
-- indexes, an update, then grouping, distinct, self-joins, sorting and a
-- window function. Rows come from arithmetic, so the output is the same
-- on every run.
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -65536;
PRAGMA temp_store = MEMORY;
DROP TABLE IF EXISTS t;
DROP TABLE IF EXISTS g;
CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL, d TEXT);
WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 200000)
INSERT INTO t SELECT x, (x * 2654435761) % 100003,
  printf('k%08d-%s', (x * 40503) % 1000003, substr('abcdefghijklmnopqrstuvwxyz', x % 26 + 1, 8)),
  ((x * 7919) % 10007) / 7.0, printf('%.*c', x % 61, 'x') FROM s;
CREATE INDEX t_a ON t(a);
CREATE INDEX t_b ON t(b);
CREATE INDEX t_cd ON t(c, d);
UPDATE t SET d = d || b WHERE a % 3 = 0;
CREATE TABLE g AS SELECT a % 1000 AS k, count(*) AS n, sum(c) AS s, group_concat(id) AS ids FROM t GROUP BY a % 1000;
SELECT count(*), sum(n), round(sum(s), 3), sum(length(ids)) FROM g;
SELECT count(DISTINCT b), min(b), max(b), count(DISTINCT d) FROM t;
SELECT t1.a, count(*) FROM t AS t1 JOIN t AS t2 ON t1.a = t2.a AND t1.id < t2.id GROUP BY t1.a ORDER BY 2 DESC, 1 LIMIT 5;
SELECT id, b FROM t ORDER BY d DESC, b LIMIT 3;
SELECT k, n, rank() OVER (ORDER BY s DESC, k) FROM g ORDER BY 3, 1 LIMIT 5;
SELECT sum(length(x)) FROM (SELECT group_concat(b, ',') AS x FROM t GROUP BY id % 5000);
SELECT count(*) FROM (SELECT DISTINCT substr(b, 1, 6), length(d) FROM t ORDER BY 1 DESC);
SELECT sum(x.c * y.c) FROM t AS x JOIN t AS y ON y.id = (x.a * 7) % 200000 + 1 WHERE x.id % 2 = 0;
