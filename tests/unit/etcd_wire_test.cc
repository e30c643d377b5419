// etcd gateway messages -> member changes: the JSON reader, the stream splitter,
// range / watch / lease answers as etcd 3.4.23 sends them, and what the watch
// loop does with each (apply, or resync on compaction, cancel, error).
#include "daemon/cluster/etcd_wire.h"

#include <gtest/gtest.h>

#include <random>

#include "daemon/cluster/etcd_json.h"

namespace dc {
namespace {

const std::string kPrefix = "/dc/members/";
const std::string kHeader =
    "\"header\":{\"cluster_id\":\"2037210783374497686\",\"member_id\":\"1319\",\"raft_term\":\"2\"";

std::string kv_json(const std::string& key, const std::string& value, int rev) {
  return "{\"key\":\"" + base64_encode(key) + "\",\"create_revision\":\"" + std::to_string(rev) +
         "\",\"mod_revision\":\"" + std::to_string(rev) + "\",\"version\":\"1\",\"value\":\"" +
         base64_encode(value) + "\",\"lease\":\"7668682406747546374\"}";
}
std::string put_msg(int rev, const std::string& id, const std::string& value) {
  return "{\"result\":{" + kHeader + ",\"revision\":\"" + std::to_string(rev) +
         "\"},\"events\":[{\"kv\":" + kv_json(kPrefix + id, value, rev) + "}]}}";
}
std::string delete_msg(int rev, const std::string& id) {
  return "{\"result\":{" + kHeader + ",\"revision\":\"" + std::to_string(rev) +
         "\"},\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":\"" + base64_encode(kPrefix + id) +
         "\",\"mod_revision\":\"" + std::to_string(rev) + "\"}}]}}";
}
std::string created_msg(int rev) {
  return "{\"result\":{" + kHeader + ",\"revision\":\"" + std::to_string(rev) +
         "\"},\"created\":true}}";
}

std::vector<std::string> ids(const std::vector<PeerConfig>& peers) {
  std::vector<std::string> out;
  for (const auto& p : peers) out.push_back(p.id);
  return out;
}

// --- JSON reader ---

TEST(Json, ParsesNestedValues) {
  std::string err;
  auto v = parse_json(
      R"( {"a":[1,-2.5e3,true,false,null,"x\"\\\/\n\u00e9\ud83d\ude00"],"b":{},"c":[]} )", &err);
  ASSERT_TRUE(v) << err;
  const JsonValue* a = v->get("a");
  ASSERT_TRUE(a && a->kind == JsonValue::Kind::kArray && a->items.size() == 6);
  EXPECT_EQ(a->items[0].text, "1");
  EXPECT_EQ(a->items[1].text, "-2.5e3");
  EXPECT_TRUE(a->items[2].boolean);
  EXPECT_EQ(a->items[4].kind, JsonValue::Kind::kNull);
  EXPECT_EQ(a->items[5].text, "x\"\\/\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_TRUE(v->get("b")->is_object());
  EXPECT_EQ(v->get("zz"), nullptr);
}

TEST(Json, RejectsMalformed) {
  const char* bad[] = {"",      "{",           "{\"a\"}", "{\"a\":}", "{\"a\":1,}",
                       "[1 2]", "{\"a\":tru}", "\"abc",   "\"\\x\"",  "\"\\ud800\"",
                       "01",    "1.",          "-",       "{} {}",    "{\"a\":\"\x01\"}",
                       "nul",   "{'a':1}",     "[1,]"};
  for (const char* b : bad) {
    std::string err;
    EXPECT_FALSE(parse_json(b, &err)) << b;
    EXPECT_FALSE(err.empty()) << b;
  }
  std::string deep(100, '[');
  std::string err;
  EXPECT_FALSE(parse_json(deep + std::string(100, ']'), &err));
}

TEST(Json, U64FromStringOrNumber) {
  std::string err;
  auto v = parse_json(
      R"({"a":"18446744073709551615","b":7,"c":"18446744073709551616","d":"-1","e":1.5,"f":true})",
      &err);
  ASSERT_TRUE(v);
  uint64_t n = 1;
  EXPECT_TRUE(json_u64(v->get("a"), &n));
  EXPECT_EQ(n, UINT64_MAX);
  EXPECT_TRUE(json_u64(v->get("b"), &n));
  EXPECT_EQ(n, 7u);
  EXPECT_TRUE(json_u64(v->get("absent"), &n));
  EXPECT_EQ(n, 0u);
  for (const char* k : {"c", "d", "e", "f"}) EXPECT_FALSE(json_u64(v->get(k), &n)) << k;
}

TEST(JsonSplitter, CutsObjectsAcrossAnyBoundary) {
  // Braces and quotes inside strings must not confuse it.
  const std::string a = R"({"x":"}{\"","y":[{"z":1}]})";
  const std::string b = put_msg(2, "a", "1.2.3.4:7 1");
  const std::string stream = a + "\n" + b + "\n  " + a;
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    JsonObjectSplitter s;
    std::vector<std::string> out;
    ASSERT_TRUE(s.feed(stream.substr(0, cut), &out));
    ASSERT_TRUE(s.feed(stream.substr(cut), &out));
    ASSERT_EQ(out.size(), 3u) << cut;
    EXPECT_EQ(out[0], a);
    EXPECT_EQ(out[1], b);
    EXPECT_EQ(out[2], a);
    EXPECT_EQ(s.pending(), 0u);
  }
}

TEST(JsonSplitter, BreaksOnGarbageAndOversize) {
  JsonObjectSplitter s;
  std::vector<std::string> out;
  EXPECT_FALSE(s.feed("{} x {}", &out));
  EXPECT_FALSE(s.feed("{}", &out));  // stays broken
  JsonObjectSplitter small(16);
  EXPECT_FALSE(small.feed("{\"a\":\"0123456789abcdef\"}", &out));
}

// --- answers ---

TEST(Range, ParsesKvsAndRevision) {
  const std::string body = "{" + kHeader + ",\"revision\":\"7\"},\"kvs\":[" +
                           kv_json(kPrefix + "n1", "10.0.0.1:7070 1", 3) + "," +
                           kv_json(kPrefix + "n2", "10.0.0.2:7070 2.5", 5) + "],\"count\":\"2\"}";
  uint64_t rev = 0;
  std::vector<EtcdKv> kvs;
  std::string err;
  ASSERT_TRUE(parse_range_response(body, &rev, &kvs, &err)) << err;
  EXPECT_EQ(rev, 7u);
  ASSERT_EQ(kvs.size(), 2u);
  EXPECT_EQ(kvs[1].key, kPrefix + "n2");
  EXPECT_EQ(kvs[1].value, "10.0.0.2:7070 2.5");
  EXPECT_EQ(kvs[1].mod_revision, 5u);
}

TEST(Range, EmptyPrefixOmitsKvs) {
  // Captured from etcd 3.4.23 for a prefix with no keys.
  uint64_t rev = 0;
  std::vector<EtcdKv> kvs{{"stale", "", 0}};
  std::string err;
  ASSERT_TRUE(parse_range_response(
      R"({"header":{"cluster_id":"2037210783374497686","member_id":"13195394291058371180","revision":"1","raft_term":"2"}})",
      &rev, &kvs, &err));
  EXPECT_EQ(rev, 1u);
  EXPECT_TRUE(kvs.empty());
}

TEST(Range, RejectsMalformed) {
  const std::string bad[] = {
      "not json",
      "{}",                                                                // no header
      "{\"header\":{\"revision\":\"x\"}}",                                 // bad revision
      "{\"header\":{\"revision\":\"3\"},\"kvs\":{}}",                      // kvs not an array
      "{\"header\":{\"revision\":\"3\"},\"kvs\":[{\"value\":\"YQ==\"}]}",  // no key
      "{\"header\":{\"revision\":\"3\"},\"kvs\":[{\"key\":\"!!!!\"}]}",    // bad base64
      "[1]",
  };
  for (const auto& b : bad) {
    uint64_t rev;
    std::vector<EtcdKv> kvs;
    std::string err;
    EXPECT_FALSE(parse_range_response(b, &rev, &kvs, &err)) << b;
  }
}

TEST(Lease, GrantAndKeepalive) {
  std::string id, err;
  ASSERT_TRUE(parse_lease_grant(
      R"({"header":{"revision":"1"},"ID":"7668682406747546374","TTL":"5"})", &id, &err));
  EXPECT_EQ(id, "7668682406747546374");
  EXPECT_FALSE(parse_lease_grant(R"({"header":{"revision":"1"},"error":"x"})", &id, &err));
  uint64_t ttl = 9;
  ASSERT_TRUE(parse_lease_keepalive(R"({"result":{"header":{"revision":"5"},"ID":"76","TTL":"5"}})",
                                    &ttl, &err));
  EXPECT_EQ(ttl, 5u);
  // A lease etcd no longer knows: the answer has no TTL (captured from 3.4.23).
  ASSERT_TRUE(parse_lease_keepalive(
      R"({"result":{"header":{"revision":"5"},"ID":"7668682406747546374"}})", &ttl, &err));
  EXPECT_EQ(ttl, 0u);
  EXPECT_FALSE(parse_lease_keepalive(R"({"error":{"message":"x"}})", &ttl, &err));
  EXPECT_TRUE(is_lease_not_found(
      R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})"));
  EXPECT_FALSE(is_lease_not_found(R"({"error":"etcdserver: request timed out"})"));
}

// etcd v3 auth: the request escapes whatever the user and password hold; the
// token must be usable as a header value; the errors that mean "authenticate
// again" are told apart from a plain refusal.
TEST(Auth, RequestTokenAndInvalidToken) {
  EXPECT_EQ(authenticate_request("dc", "p\"w\\\n"), R"({"name":"dc","password":"p\"w\\\u000a"})");
  std::string err;
  auto v = parse_json(authenticate_request("u", std::string("a\0b\x01\"", 5)), &err);
  ASSERT_TRUE(v) << err;
  EXPECT_EQ(v->get("password")->text, std::string("a\0b\x01\"", 5));
  std::string token;
  EXPECT_TRUE(parse_auth_token(R"({"header":{"revision":"3"},"token":"abc.12"})", &token, &err));
  EXPECT_EQ(token, "abc.12");
  EXPECT_FALSE(parse_auth_token(R"({"header":{}})", &token, &err));
  EXPECT_FALSE(parse_auth_token(R"({"token":""})", &token, &err));
  EXPECT_FALSE(parse_auth_token(R"({"token":"a\r\nX-Evil: 1"})", &token, &err));
  EXPECT_FALSE(parse_auth_token(R"({"token":7})", &token, &err));
  EXPECT_FALSE(parse_auth_token("not json", &token, &err));
  EXPECT_TRUE(is_auth_token_invalid(
      R"({"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16})"));
  EXPECT_FALSE(is_auth_token_invalid(
      R"({"error":"etcdserver: permission denied","message":"etcdserver: permission denied","code":7})"));
  EXPECT_FALSE(is_auth_token_invalid(
      R"({"error":"etcdserver: authentication failed, invalid user ID or password","code":3})"));
}

TEST(Requests, PrefixRangeAndBodies) {
  EXPECT_EQ(prefix_range_end("/dc/members/"), "/dc/members0");
  EXPECT_EQ(prefix_range_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(range_request("/dc/members/"),
            R"({"key":"L2RjL21lbWJlcnMv","range_end":"L2RjL21lbWJlcnMw"})");
  EXPECT_EQ(
      watch_create_request("/dc/members/", 6),
      R"({"create_request":{"key":"L2RjL21lbWJlcnMv","range_end":"L2RjL21lbWJlcnMw","start_revision":"6"}})");
  std::string err;
  EXPECT_TRUE(parse_json(put_request("/dc/members/n1", "10.0.0.1:7070 1", "42"), &err));
}

// --- watch messages ---

TEST(Watch, CreatedPutDelete) {
  WatchMessage m;
  std::string err;
  ASSERT_TRUE(parse_watch_message(created_msg(1), &m, &err)) << err;
  EXPECT_TRUE(m.created);
  EXPECT_EQ(m.revision, 1u);
  EXPECT_TRUE(m.events.empty());

  ASSERT_TRUE(parse_watch_message(put_msg(2, "a", "1.2.3.4:7 1"), &m, &err)) << err;
  ASSERT_EQ(m.events.size(), 1u);
  EXPECT_EQ(m.events[0].type, WatchEvent::Type::kPut);  // PUT is the default: no "type"
  EXPECT_EQ(m.events[0].kv.key, "/dc/members/a");
  EXPECT_EQ(m.events[0].kv.value, "1.2.3.4:7 1");

  ASSERT_TRUE(parse_watch_message(delete_msg(4, "a"), &m, &err)) << err;
  ASSERT_EQ(m.events.size(), 1u);
  EXPECT_EQ(m.events[0].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(m.events[0].kv.value, "");
  EXPECT_EQ(m.events[0].kv.mod_revision, 4u);
}

TEST(Watch, CompactedCanceledAndErrorAskForResync) {
  MemberMap members(kPrefix);
  std::string err, why;
  WatchMessage m;
  // Captured from etcd 3.4.23: a watch from revision 2 after a compaction at 4.
  ASSERT_TRUE(parse_watch_message(
      R"({"result":{"header":{"cluster_id":"2037210783374497686","member_id":"13195394291058371180","raft_term":"2"},"canceled":true,"compact_revision":"4"}})",
      &m, &err))
      << err;
  EXPECT_EQ(m.compact_revision, 4u);
  EXPECT_EQ(apply_watch_message(m, &members, &why), WatchStep::kResync);
  EXPECT_NE(why.find("compacted"), std::string::npos) << why;

  ASSERT_TRUE(parse_watch_message(
      "{\"result\":{" + kHeader +
          ",\"revision\":\"9\"},\"canceled\":true,\"cancel_reason\":\"permission denied\"}}",
      &m, &err));
  EXPECT_EQ(apply_watch_message(m, &members, &why), WatchStep::kResync);
  EXPECT_NE(why.find("permission denied"), std::string::npos) << why;

  ASSERT_TRUE(parse_watch_message(
      R"({"error":{"grpc_code":14,"http_code":503,"message":"transport is closing"}})", &m, &err));
  EXPECT_TRUE(m.error);
  EXPECT_EQ(apply_watch_message(m, &members, &why), WatchStep::kResync);
  EXPECT_NE(why.find("transport is closing"), std::string::npos) << why;

  ASSERT_TRUE(parse_watch_message(created_msg(3), &m, &err));
  EXPECT_EQ(apply_watch_message(m, &members, &why), WatchStep::kContinue);
}

TEST(Watch, RejectsMalformed) {
  const std::string
      bad[] =
          {
              "{}",
              "{\"result\":5}",
              "{\"result\":{}}",                                                     // no header
              "{\"result\":{\"header\":{\"revision\":\"1\"},\"created\":\"yes\"}}",  // not a bool
              "{\"result\":{\"header\":{\"revision\":\"1\"},\"compact_revision\":\"-4\"}}",
              "{\"result\":{\"header\":{\"revision\":\"1\"},\"events\":{}}}",
              "{\"result\":{\"header\":{\"revision\":\"1\"},\"events\":[{\"type\":\"MOVE\",\"kv\":{"
              "\"key\":\"YQ==\"}}]}}",
              "{\"result\":{\"header\":{\"revision\":\"1\"},\"events\":[{\"kv\":{}}]}}",
              "{\"result\":{\"header\":{\"revision\":\"1\"},\"events\":[{}]}}",
              "{\"result\":{\"header\":{\"revision\":\"1\"},\"events\":[{\"kv\":{\"key\":\"YQ\"}}]}"
              "}",  // bad base64
              put_msg(2, "a", "x").substr(0, 40),
          };
  for (const auto& b : bad) {
    WatchMessage m;
    std::string err;
    EXPECT_FALSE(parse_watch_message(b, &m, &err)) << b;
  }
}

// --- members ---

TEST(Members, ParseValidatesEverything) {
  auto p = parse_member(kPrefix, {kPrefix + "n-1.a_b", "10.0.0.1:7070 2.5", 0});
  ASSERT_TRUE(p);
  EXPECT_EQ(p->id, "n-1.a_b");
  EXPECT_EQ(p->address, "10.0.0.1:7070");
  EXPECT_EQ(p->weight, 2.5);
  p = parse_member(kPrefix, {kPrefix + "n1", "[::1]:7070", 0});
  ASSERT_TRUE(p);
  EXPECT_EQ(p->weight, 1.0);
  const EtcdKv bad[] = {
      {kPrefix, "10.0.0.1:7070", 0},  // empty id
      {kPrefix + std::string(64, 'a'), "10.0.0.1:7070", 0},
      {kPrefix + "n 1", "10.0.0.1:7070", 0},
      {kPrefix + "n/1", "10.0.0.1:7070", 0},
      {"/other/n1", "10.0.0.1:7070", 0},
      {kPrefix + "n1", "garbage", 0},
      {kPrefix + "n1", "10.0.0.1:0", 0},
      {kPrefix + "n1", "10.0.0.1:70000", 0},
      {kPrefix + "n1", ":7070", 0},
      {kPrefix + "n1", "10.0.0.1:7070 0", 0},
      {kPrefix + "n1", "10.0.0.1:7070 -1", 0},
      {kPrefix + "n1", "10.0.0.1:7070 1001", 0},
      {kPrefix + "n1", "10.0.0.1:7070 nan", 0},
      {kPrefix + "n1", "10.0.0.1:7070 1x", 0},
      {kPrefix + "n1", "10.0.0.1:7070 ", 0},
  };
  for (const auto& kv : bad) EXPECT_FALSE(parse_member(kPrefix, kv)) << kv.key << " = " << kv.value;
}

TEST(Members, ValueRoundTripsWeightExactly) {
  // Every node must see the same weight the member itself uses for placement.
  for (double w : {1.0, 0.1, 2.5, 1.0 / 3, 999.999}) {
    auto p = parse_member(kPrefix, {kPrefix + "n1", member_value("10.0.0.1:7070", w), 0});
    ASSERT_TRUE(p);
    EXPECT_EQ(p->weight, w);
  }
}

TEST(Members, ResetThenEvents) {
  MemberMap m(kPrefix);
  m.reset({{kPrefix + "n3", "10.0.0.3:7070 1", 3},
           {kPrefix + "n1", "10.0.0.1:7070 1", 2},
           {kPrefix + "bad", "nope", 4},
           {kPrefix + "n2", "10.0.0.2:7070 1", 5}});
  EXPECT_EQ(m.rejected(), 1u);
  EXPECT_EQ(ids(m.peers_except("n2")),
            (std::vector<std::string>{"n1", "n3"}));  // sorted, self left out
  ASSERT_NE(m.find("n2"), nullptr);

  m.apply({WatchEvent::Type::kDelete, {kPrefix + "n3", "", 6}});
  m.apply({WatchEvent::Type::kPut, {kPrefix + "n0", "10.0.0.9:7070 2", 7}});
  m.apply({WatchEvent::Type::kPut, {kPrefix + "n1", "10.0.0.11:7070 1", 8}});  // moved
  m.apply({WatchEvent::Type::kDelete, {kPrefix + "never", "", 9}});            // unknown: no-op
  auto peers = m.peers_except("n2");
  ASSERT_EQ(ids(peers), (std::vector<std::string>{"n0", "n1"}));
  EXPECT_EQ(peers[0].weight, 2.0);
  EXPECT_EQ(peers[1].address, "10.0.0.11:7070");

  // A member rewritten with a bad value is dropped, not kept stale.
  m.apply({WatchEvent::Type::kPut, {kPrefix + "n0", "broken", 10}});
  EXPECT_EQ(ids(m.peers_except("n2")), (std::vector<std::string>{"n1"}));
  EXPECT_EQ(m.rejected(), 2u);
  // A key outside the prefix is ignored and counted.
  m.apply({WatchEvent::Type::kPut, {"/elsewhere/x", "10.0.0.5:1 1", 11}});
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(m.rejected(), 3u);
  // reset() forgets what the events added.
  m.reset({});
  EXPECT_EQ(m.size(), 0u);
}

// The whole read path of the watch: the body bytes libcurl hands over (chunked
// framing already removed), cut into writes at random places, through splitter,
// parser and member map.
TEST(Members, WatchStreamPipelineAnyReadBoundaries) {
  std::vector<std::string> msgs = {created_msg(5), put_msg(6, "n4", "10.0.0.4:7070 1"),
                                   delete_msg(7, "n1"), put_msg(8, "n5", "10.0.0.5:7070 3"),
                                   delete_msg(9, "n4")};
  std::string wire;
  for (const auto& m : msgs) {
    wire += m + "\n";  // the gateway ends each message with a newline
  }
  std::mt19937 rng(11);
  for (int round = 0; round < 300; ++round) {
    MemberMap members(kPrefix);
    members.reset({{kPrefix + "n1", "10.0.0.1:7070 1", 2}, {kPrefix + "n2", "10.0.0.2:7070 1", 3}});
    JsonObjectSplitter splitter;
    size_t at = 0;
    int changes = 0;
    while (at < wire.size()) {
      const size_t n = std::min<size_t>(wire.size() - at, 1 + rng() % 64);
      const std::string body = wire.substr(at, n);
      at += n;
      std::vector<std::string> objects;
      ASSERT_TRUE(splitter.feed(body, &objects));
      for (const auto& o : objects) {
        WatchMessage m;
        std::string err, why;
        ASSERT_TRUE(parse_watch_message(o, &m, &err)) << err;
        const WatchStep step = apply_watch_message(m, &members, &why);
        ASSERT_NE(step, WatchStep::kResync) << why;
        if (step == WatchStep::kChanged) ++changes;
      }
    }
    EXPECT_EQ(changes, 4);
    auto peers = members.peers_except("n2");
    ASSERT_EQ(ids(peers), (std::vector<std::string>{"n5"}));
    EXPECT_EQ(peers[0].weight, 3.0);
  }
}

}  // namespace
}  // namespace dc
