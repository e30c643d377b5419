// HTTP framing for the etcd client: response heads, and chunked bodies decoded
// the same however the bytes are cut into reads.
#include "daemon/cluster/etcd_http.h"

#include <gtest/gtest.h>

#include <random>

namespace dc {
namespace {

// What etcd 3.4.23's gateway sent for a watch (captured, CRLFs made explicit).
const std::string kWatchHead =
    "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: application/json\r\n"
    "Grpc-Metadata-Content-Type: application/grpc\r\nDate: Sun, 22 Nov 2026 19:31:03 GMT\r\n"
    "Transfer-Encoding: chunked\r\n\r\n";
const std::string kMsg1 =
    "{\"result\":{\"header\":{\"cluster_id\":\"2037210783374497686\",\"member_id\":"
    "\"13195394291058371180\","
    "\"revision\":\"1\",\"raft_term\":\"2\"},\"created\":true}}\n";
const std::string kMsg2 =
    "{\"result\":{\"header\":{\"cluster_id\":\"2037210783374497686\",\"member_id\":"
    "\"13195394291058371180\","
    "\"revision\":\"2\",\"raft_term\":\"2\"},\"events\":[{\"kv\":{\"key\":\"L2RjL21lbWJlcnMvYQ==\","
    "\"create_revision\":\"2\",\"mod_revision\":\"2\",\"version\":\"1\",\"value\":"
    "\"MS4yLjMuNDo3IDE=\"}}]}}\n";

std::string chunk(const std::string& data) {
  char size[16];
  snprintf(size, sizeof size, "%zx", data.size());
  return std::string(size) + "\r\n" + data + "\r\n";
}

TEST(HttpHead, ParsesEtcdWatchHead) {
  HttpHead h;
  ASSERT_EQ(parse_http_head(kWatchHead + "8c\r\n", &h), 1);
  EXPECT_EQ(h.status, 200);
  EXPECT_TRUE(h.chunked);
  EXPECT_EQ(h.content_length, -1);
  EXPECT_EQ(h.size, kWatchHead.size());
}

TEST(HttpHead, IncompleteThenComplete) {
  HttpHead h;
  for (size_t n = 0; n < kWatchHead.size(); ++n)
    EXPECT_EQ(parse_http_head(kWatchHead.substr(0, n), &h), 0) << n;
  EXPECT_EQ(parse_http_head(kWatchHead, &h), 1);
}

TEST(HttpHead, ErrorStatusWithLength) {
  HttpHead h;
  ASSERT_EQ(parse_http_head("HTTP/1.1 404 Not Found\r\ncontent-length: 104\r\n\r\n{", &h), 1);
  EXPECT_EQ(h.status, 404);
  EXPECT_FALSE(h.chunked);
  EXPECT_EQ(h.content_length, 104);
}

TEST(HttpHead, RejectsMalformed) {
  HttpHead h;
  EXPECT_EQ(parse_http_head("HTTP/1.1 2x0 OK\r\n\r\n", &h), -1);
  EXPECT_EQ(parse_http_head("SSH-2.0-OpenSSH\r\n\r\n", &h), -1);
  EXPECT_EQ(parse_http_head("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", &h), -1);
  EXPECT_EQ(parse_http_head("HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", &h), -1);
  EXPECT_EQ(parse_http_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", &h), -1);
  EXPECT_EQ(parse_http_head(std::string(20000, 'x'), &h), -1);  // no end of head in 16 KiB
}

// The whole body, fed cut at `cuts` (sorted offsets).
ChunkedDecoder::State decode(const std::string& wire, const std::vector<size_t>& cuts,
                             std::string* out) {
  ChunkedDecoder d;
  size_t at = 0;
  for (size_t c : cuts) {
    d.feed(std::string_view(wire).substr(at, c - at), out);
    at = c;
  }
  return d.feed(std::string_view(wire).substr(at), out);
}

TEST(Chunked, EverySingleSplitPoint) {
  const std::string wire = chunk(kMsg1) + chunk(kMsg2) + "0\r\n\r\n";
  for (size_t cut = 0; cut <= wire.size(); ++cut) {
    std::string out;
    EXPECT_EQ(decode(wire, {cut}, &out), ChunkedDecoder::State::kDone) << cut;
    EXPECT_EQ(out, kMsg1 + kMsg2) << cut;
  }
}

TEST(Chunked, ByteAtATimeAndRandomCuts) {
  const std::string wire = chunk(kMsg1) + chunk(kMsg2) + chunk(kMsg1) + "0\r\n\r\n";
  std::vector<size_t> every;
  for (size_t i = 1; i < wire.size(); ++i) every.push_back(i);
  std::string out;
  EXPECT_EQ(decode(wire, every, &out), ChunkedDecoder::State::kDone);
  EXPECT_EQ(out, kMsg1 + kMsg2 + kMsg1);
  std::mt19937 rng(7);
  for (int round = 0; round < 500; ++round) {
    std::vector<size_t> cuts;
    for (int k = 0; k < 6; ++k) cuts.push_back(rng() % (wire.size() + 1));
    std::sort(cuts.begin(), cuts.end());
    out.clear();
    EXPECT_EQ(decode(wire, cuts, &out), ChunkedDecoder::State::kDone);
    EXPECT_EQ(out, kMsg1 + kMsg2 + kMsg1);
  }
}

TEST(Chunked, StreamNotYetEnded) {
  std::string out;
  ChunkedDecoder d;
  EXPECT_EQ(d.feed(chunk(kMsg1) + "100\r\n{\"res", &out), ChunkedDecoder::State::kMore);
  EXPECT_EQ(out, kMsg1 + "{\"res");
}

TEST(Chunked, ExtensionsUppercaseHexAndTrailers) {
  // etcd's error answers end with a trailer (Grpc-Trailer-Content-Type).
  const std::string wire = "A;name=value\r\n0123456789\r\n1F\r\n" + std::string(31, 'x') +
                           "\r\n0\r\nGrpc-Trailer-Content-Type: application/grpc\r\n\r\nignored";
  std::string out;
  EXPECT_EQ(decode(wire, {3, 20}, &out), ChunkedDecoder::State::kDone);
  EXPECT_EQ(out, "0123456789" + std::string(31, 'x'));
}

TEST(Chunked, RejectsMalformed) {
  const char* bad[] = {
      "zz\r\nab\r\n",        // size not hex
      "\r\n",                // no size digits
      "2\r\nabc\r\n",        // data longer than the size
      "2\nab\r\n",           // bare LF after the size
      "2\r\nab\n",           // bare LF after the data
      "123456789\r\n",       // size over the limit
      "0\r\nTrailer\n\r\n",  // bare LF in a trailer
      "0\r\n\rX",            // bad end
  };
  for (const char* b : bad) {
    std::string out;
    ChunkedDecoder d;
    EXPECT_EQ(d.feed(b, &out), ChunkedDecoder::State::kError) << b;
    // It stays broken.
    EXPECT_EQ(d.feed("1\r\na\r\n", &out), ChunkedDecoder::State::kError) << b;
  }
}

}  // namespace
}  // namespace dc
