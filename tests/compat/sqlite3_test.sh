#!/usr/bin/env bash
# sqlite3 (the CLI, and Python's sqlite3 module) querying a database file inside the
# dataset, opened read-only: identical results natively and under the shim, the
# second shim pass from the cache. SQLite reads pages with pread64.
source "$(dirname "$0")/compat_lib.sh"

command -v sqlite3 >/dev/null || skip "sqlite3 CLI not installed (apt install sqlite3)"
write_config 256MiB
"$PY" - "$DATA/db.sqlite" <<'EOP'
import random, sqlite3, sys
rng = random.Random(11)
con = sqlite3.connect(sys.argv[1])
con.executescript("""
  CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v TEXT NOT NULL, x REAL NOT NULL);
  CREATE TABLE tags(id INTEGER PRIMARY KEY, t_id INTEGER NOT NULL REFERENCES t(id), tag TEXT NOT NULL);
""")
con.executemany("INSERT INTO t(k, v, x) VALUES (?, ?, ?)",
                ((rng.randrange(100000), rng.randbytes(rng.randint(10, 120)).hex(), rng.random() * 1000)
                 for _ in range(40000)))
con.executemany("INSERT INTO tags(t_id, tag) VALUES (?, ?)",
                ((rng.randrange(1, 40001), rng.choice(["cat", "dog", "car", "tree"])) for _ in range(20000)))
con.executescript("CREATE INDEX t_k ON t(k); CREATE INDEX tags_tag ON tags(tag);")
con.commit()
con.close()
EOP
start_agent

queries=(
  "SELECT count(*) FROM t;"
  "SELECT sum(x), total(k), max(length(v)) FROM t;"
  "SELECT id, k, v FROM t WHERE k = (SELECT k FROM t WHERE id = 1234);"
  "SELECT count(*), min(id), max(id) FROM t WHERE k BETWEEN 20000 AND 20500;"
  "SELECT id, printf('%.6f', x) FROM t ORDER BY x DESC LIMIT 10;"
  "SELECT k, substr(v, 1, 16) FROM t ORDER BY k LIMIT 5 OFFSET 20000;"
  "SELECT tag, count(*), sum(t.x) FROM tags JOIN t ON t.id = tags.t_id GROUP BY tag ORDER BY tag;"
  "EXPLAIN QUERY PLAN SELECT * FROM t WHERE k = 5;"
  "PRAGMA integrity_check;"
)

n=0
for q in "${queries[@]}"; do
  n=$((n + 1))
  compat_case "sqlite3 -readonly (query $n)" accel sqlite3 -batch -readonly db.sqlite "$q"
done
# immutable=1: no locks, no journal check; SQLite only reads the file. It does not
# make the open read-only (without -readonly or mode=ro SQLite opens O_RDWR, and the
# shim then rightly treats it as a writer and serves nothing).
compat_case "sqlite3 -readonly immutable URI (all queries)" accel \
  sqlite3 -batch -readonly "file:db.sqlite?immutable=1" "${queries[*]}"
compat_case "sqlite3 mode=ro immutable URI (all queries)" accel \
  sqlite3 -batch "file:db.sqlite?mode=ro&immutable=1" "${queries[*]}"

py_sqlite() {
  "$PY" - "$@" <<'EOP'
import sqlite3, sys
con = sqlite3.connect("file:db.sqlite?mode=ro", uri=True)
for q in sys.argv[1:]:
    print(q, con.execute(q).fetchall())
EOP
}
compat_case "python3 sqlite3 module (mode=ro)" accel py_sqlite "${queries[@]:0:7}"

compat_finish
