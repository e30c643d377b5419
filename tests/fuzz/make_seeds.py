#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/ (committed; rerun after a wire
change). Seeds are valid messages of each kind, so the fuzzer starts past the
magic and length checks. Regression inputs from crashes are added by hand under
a name saying what they protect, and are never overwritten here."""
import base64, json, os, struct, sys

here = os.path.dirname(os.path.abspath(__file__))

def put(name, fname, data):
    d = os.path.join(here, "corpus", name)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data)

# control: MsgHeader{magic, version, op, length, request_id}
CM, CV = 0x31434344, 1
def chdr(op, length, rid=7):
    return struct.pack("<IHHII", CM, CV, op, length, rid)
put("control", "hello_shim", chdr(1, 32) + struct.pack("<IIII", 1, 1, 1234, 0))
put("control", "hello_ctl", chdr(1, 32) + struct.pack("<IIII", 2, 0, 99, 0))
path = b"dir/file.bin"
put("control", "fetch", chdr(3, 48 + len(path)) + struct.pack("<QQQIHH", 1, 2, 0, 4, 0, len(path)) + path)
put("control", "invalidate", chdr(7, 24 + len(path)) + struct.pack("<HHI", 0, len(path), 0) + path)
put("control", "stats", chdr(5, 16))
put("control", "ring", chdr(9, 16))
put("control", "peers", chdr(10, 16))

# peer frames: flag byte (bit 0: keep CRCs as given) + Header(24) + body.
PM, PV = 0x31504344, 1
def frame(op, body, rid=1, keep=0, body_len=None):
    bl = len(body) if body_len is None else body_len
    return bytes([keep]) + struct.pack("<IHHIIII", PM, PV, op, rid, bl, 0, 0) + body
hello = b"node-a".ljust(64, b"\0") + bytes(range(32))
put("peer_frame", "hello", frame(1, hello))
put("peer_frame", "challenge", frame(2, hello + bytes(32)))
put("peer_frame", "auth", frame(3, bytes(32)))
put("peer_frame", "authok_ping_pong", frame(4, b"") + frame(7, b"") + frame(8, b""))
ds, p = b"train", b"shard/0001.bin"
fetch = struct.pack("<QQQIIHHI", 1, 2, 3, 0, 0, len(ds), len(p), 0) + ds + p
put("peer_frame", "fetch", frame(5, fetch, rid=9))
data = bytes(range(256)) * 8
reply = struct.pack("<iIII", 0, len(data), 0, 0) + data
put("peer_frame", "fetch_reply_data", frame(6, reply, rid=9))
put("peer_frame", "fetch_reply_error", frame(6, struct.pack("<iIII", 2, 0, 0, 0)))
put("peer_frame", "bad_crc", frame(5, fetch, keep=1))

# etcd JSON (first byte: chunk size for the splitter)
b64 = lambda s: base64.b64encode(s.encode()).decode()
rng = {"header": {"revision": "7"}, "kvs": [{"key": b64("/dc/members/n1"), "value": b64("10.0.0.1:7070 2"), "mod_revision": "5"}], "count": "1"}
created = {"result": {"header": {"revision": "8"}, "created": True}}
events = {"result": {"header": {"revision": "9"}, "events": [{"kv": {"key": b64("/dc/members/n2"), "value": b64("10.0.0.2:7070"), "mod_revision": "9"}}, {"type": "DELETE", "kv": {"key": b64("/dc/members/n1")}}]}}
cancel = {"result": {"header": {"revision": "9"}, "canceled": True, "compact_revision": "4", "cancel_reason": "compacted"}}
err = {"error": {"grpc_code": 14, "message": "etcdserver: no leader"}}
for n, o in [("range", rng), ("created", created), ("events", events), ("canceled", cancel), ("error", err)]:
    put("etcd_json", n, b"\x05" + json.dumps(o).encode())
    put("etcd_wire", n, json.dumps(o))
put("etcd_json", "stream", b"\x02" + (json.dumps(created) + "\n" + json.dumps(events) + " " + json.dumps(cancel)).encode())
put("etcd_json", "escapes", b"\x01" + br'{"s":"a\"b\\c\u00e9\n","n":-1.5e3,"a":[true,false,null,[]],"o":{}}')
put("etcd_wire", "lease_grant", '{"header":{"revision":"3"},"ID":"7587862072907441420","TTL":"5"}')
put("etcd_wire", "lease_keepalive", '{"result":{"header":{},"ID":"7587862072907441420","TTL":"5"}}')
put("etcd_wire", "lease_gone", '{"result":{"header":{},"ID":"7587862072907441420"}}')
put("etcd_wire", "lease_not_found", '{"error":"etcdserver: requested lease not found","code":5}')
put("etcd_wire", "member_value", "10.1.2.3:7070 0.5")

# etcd HTTP (first byte: feed step)

# config
put("config", "minimal", '[cache]\nmemory = "64MiB"\n[[dataset]]\nname = "d"\npath = "/tmp"\n')
put("config", "full", """[agent]
socket = "/run/dc/agent.sock"
socket_mode = "0660"
log_level = "debug"
[cache]
memory = "1GiB"
page_size = "64KiB"
block_size = "4MiB"
max_open_files = 16
huge_pages = "auto"
[origin]
io_depth = 1
[[dataset]]
name = "train"
path = "/srv/datasets/train"
[cluster]
node_id = "n1"
listen = "0.0.0.0:7070"
secret_file = "/etc/dc/secret"
membership = "static"
send = "zerocopy"
copies_share = 0.25
[[peer]]
id = "n2"
address = "10.0.0.2:7070"
weight = 2.0
""")
put("config", "etcd", '[cache]\nmemory = "64MiB"\n[[dataset]]\nname = "d"\npath = "/tmp"\n[cluster]\nnode_id = "a"\nlisten = "127.0.0.1:1"\nsecret_file = "/s"\nmembership = "etcd"\netcd = ["127.0.0.1:2379"]\n')

# client region: ClientRegionHeader(192) + ring(4096 x 8) + agent tail(8)
RM = 0x31474e4952544844
hdr = struct.pack("<QII", RM, 4096, 0) + bytes(48) + struct.pack("<Q", 3) + bytes(56) + struct.pack("<8Q", 5, 5 << 16, 1, 1 << 20, 0, 0, 0, 0)
ring = bytearray(4096 * 8)
for i, slot in enumerate([0, 4, 8]):
    struct.pack_into("<Q", ring, i * 8, (slot << 32) | ((i + 1) * 0x1000 + 7))
put("client_region", "three_hits", hdr + bytes(ring) + struct.pack("<Q", 0))
hdr_wrap = hdr[:64] + struct.pack("<Q", 2**64 - 1) + hdr[72:]
put("client_region", "head_behind_tail", hdr_wrap + bytes(ring) + struct.pack("<Q", 5))
